from django.urls import path

from smallstack import views

app_name = "smallstack"

urlpatterns = [
    path("", views.index, name="dashboard"),
    path("group/<str:group>/", views.group, name="group"),
    path("app/<str:app_label>/", views.app, name="app"),
]
