"""Include under ``smallstack/backups/``: ``path("smallstack/backups/", include(...))``."""

from django.urls import path

from smallstack.backups import views

app_name = "backups"

urlpatterns = [
    path("", views.backups_page, name="page"),
    path("run/", views.back_up_now, name="run"),
    path("<int:pk>/download/", views.download, name="download"),
]
