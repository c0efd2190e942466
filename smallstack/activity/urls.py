from django.urls import path

from smallstack.activity import views

app_name = "activity"

urlpatterns = [
    path("", views.activity, name="page"),
]
