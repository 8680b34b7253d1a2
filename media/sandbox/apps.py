from django.apps import AppConfig


class SandboxConfig(AppConfig):
    name = "media.sandbox"
    label = "sandbox"
    verbose_name = "ConnectyCube sandbox"
