from django.apps import AppConfig


class AgentConfig(AppConfig):
    name = "agent"
    verbose_name = "Agent app"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers system checks)
