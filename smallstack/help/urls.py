"""Mount under ``help/``: ``path("help/", include("smallstack.help.urls"))``."""

from django.urls import path

from smallstack.help import views

app_name = "help"

urlpatterns = [
    path("", views.index, name="index"),
    path("<slug:section>/", views.section, name="section"),
    path("<slug:section>/<slug:document>/", views.document, name="document"),
]
