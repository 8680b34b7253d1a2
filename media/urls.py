"""URLs of the media app: the agent app."""

from django.urls import path

from . import views

app_name = "media"
urlpatterns = [
    path("", views.agent_app, name="agent"),
]
