"""URLs of the agent app."""

from django.urls import path

from . import views

app_name = "agent"
urlpatterns = [
    path("", views.agent_app, name="agent"),
]
