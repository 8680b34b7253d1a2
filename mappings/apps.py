from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class MappingsConfig(AppConfig):
    name = "mappings"
    verbose_name = _("Mappings")

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers system checks)
        from .groups import ensure_operator_group

        post_migrate.connect(ensure_operator_group, sender=self)
