"""The project's URLs plus ``/bench/bare/``: the floor of the stack (same middleware)."""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from project.urls import urlpatterns as project_urlpatterns


async def bare(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


urlpatterns = [*project_urlpatterns, path("bench/bare/", bare)]
