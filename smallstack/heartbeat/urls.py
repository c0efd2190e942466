"""Include at the site's root: ``path("", include("smallstack.heartbeat.urls"))``."""

from django.urls import path

from smallstack.heartbeat import views

app_name = "heartbeat"

urlpatterns = [
    path("smallstack/status/", views.status_page, name="status"),
    path("status/", views.public_status, name="public"),
]
