"""The project's URLs plus one view that fails, to see where a server error is logged."""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path


async def fail(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("deploy test: an unhandled error")


urlpatterns = [
    path("deploy-error/", fail),
    path("", include("project.urls")),
]
