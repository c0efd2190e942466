from django.urls import path

from explorer import views

app_name = "explorer"

model = "<str:app_label>/<str:model_name>/"

urlpatterns = [
    path("", views.index, name="index"),
    path(model, views.model_list, name="list"),
    path(f"{model}add/", views.create, name="add"),
    path(f"{model}<str:pk>/", views.detail, name="detail"),
    path(f"{model}<str:pk>/edit/", views.edit, name="edit"),
    path(f"{model}<str:pk>/delete/", views.delete, name="delete"),
]
