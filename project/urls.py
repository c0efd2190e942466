from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from smallstack.api import api

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="smallstack:dashboard", permanent=False)),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("smallstack/explorer/", include("explorer.urls")),
    path("smallstack/activity/", include("smallstack.activity.urls")),
    path("smallstack/backups/", include("smallstack.backups.urls")),
    path("help/", include("smallstack.help.urls")),
    path("", include("smallstack.heartbeat.urls")),  # /smallstack/status/ and /status/
    path("smallstack/", include("smallstack.urls")),
    path("api/", api.urls),
]
