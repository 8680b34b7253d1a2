from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

from connectycube.config import (
    DEFAULT_API_URL,
    DEFAULT_CHAT_DOMAIN,
    DEFAULT_CHAT_URL,
    AppConfig,
)
from sip.uri import InvalidSipUri, SipUri, normalise

from .fields import EncryptedSecretField


class Department(models.Model):
    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("slug"), max_length=50, unique=True)
    operators = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="departments",
        verbose_name=_("operators"),
        help_text=_("Staff users who see and manage this department's mappings and calls."),
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("department")
        verbose_name_plural = _("departments")

    def __str__(self) -> str:
        return self.name


class HttpsURLField(models.URLField):
    """A URL field whose form assumes https:// for a bare host name."""

    def formfield(self, **kwargs: Any) -> Any:
        return super().formfield(**{"assume_scheme": "https", **kwargs})


class ConnectyCubeApp(models.Model):
    """A ConnectyCube application: the app id, keys and endpoints the mappings log in to."""

    name = models.CharField(_("name"), max_length=100)
    app_id = models.PositiveIntegerField(_("application id"))
    auth_key = models.CharField(_("auth key"), max_length=200)
    auth_secret = EncryptedSecretField(
        _("auth secret"),
        help_text=_("Only for the legacy signed session (HMAC-SHA1). Leave empty for current apps."),
    )
    api_url = HttpsURLField(_("API URL"), default=DEFAULT_API_URL)
    chat_url = models.CharField(
        _("chat WebSocket URL"),
        max_length=200,
        default=DEFAULT_CHAT_URL,
        help_text=_("XMPP over WebSocket, e.g. wss://chat.connectycube.com:5291"),
    )
    chat_domain = models.CharField(_("chat domain"), max_length=200, default=DEFAULT_CHAT_DOMAIN)

    class Meta:
        ordering = ["name"]
        verbose_name = _("ConnectyCube application")
        verbose_name_plural = _("ConnectyCube applications")

    def __str__(self) -> str:
        return f"{self.name} ({self.app_id})"

    def clean(self) -> None:
        if not self.chat_url.startswith(("ws://", "wss://")):
            raise ValidationError({"chat_url": _("The chat URL must start with ws:// or wss://.")})

    def config(self) -> AppConfig:
        """Return the Django-free configuration the ConnectyCube client takes."""
        return AppConfig(
            app_id=self.app_id,
            auth_key=self.auth_key,
            api_url=self.api_url,
            chat_url=self.chat_url,
            chat_domain=self.chat_domain,
            auth_secret=self.auth_secret.reveal() if self.auth_secret else None,
        )


class RingStrategy(models.TextChoices):
    PARALLEL = "parallel", _("Parallel: ring every agent at once")
    SEQUENTIAL = "sequential", _("Sequential: one agent after another")


def validate_agents(value: object) -> None:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
    ):
        raise ValidationError(_("Enter a list of ConnectyCube user ids, e.g. [1001, 1002]."))
    if len(set(value)) != len(value):
        raise ValidationError(_("Each agent may appear only once."))


class SipMappingQuerySet(models.QuerySet):
    def for_user(self, user: AbstractBaseUser) -> SipMappingQuerySet:
        if user.is_superuser:
            return self
        return self.filter(department__operators=user)


class SipMapping(models.Model):
    """A SIP URI mapped to a department's ConnectyCube account and the agents to ring."""

    sip_uri = models.CharField(
        _("SIP URI"),
        max_length=255,
        unique=True,
        help_text=_("E.g. sip:vendas@empresa.com. Case, brackets and parameters are ignored."),
    )
    sip_user = models.CharField(_("SIP user"), max_length=255, editable=False, db_index=True)
    department = models.ForeignKey(
        Department, on_delete=models.PROTECT, related_name="mappings", verbose_name=_("department")
    )
    app = models.ForeignKey(
        ConnectyCubeApp,
        on_delete=models.PROTECT,
        related_name="mappings",
        verbose_name=_("ConnectyCube application"),
    )
    cc_login = models.CharField(_("ConnectyCube login"), max_length=200)
    cc_password = EncryptedSecretField(_("ConnectyCube password"), blank=False)
    cc_user_id = models.PositiveBigIntegerField(
        _("ConnectyCube user id"),
        null=True,
        blank=True,
        help_text=_("Filled in by “Test credentials” when empty."),
    )
    display_name = models.CharField(
        _("display name"), max_length=100, help_text=_("Shown to agents, as in “Vendas ligando...”.")
    )
    agents = models.JSONField(
        _("agents"),
        default=list,
        blank=True,
        validators=[validate_agents],
        help_text=_("ConnectyCube user ids to ring, as a JSON list, e.g. [1001, 1002]."),
    )
    ring_strategy = models.CharField(
        _("ring strategy"), max_length=20, choices=RingStrategy.choices, default=RingStrategy.PARALLEL
    )
    ring_timeout = models.PositiveIntegerField(
        _("ring timeout (seconds)"),
        default=30,
        validators=[MinValueValidator(5), MaxValueValidator(300)],
        help_text=_("With the sequential strategy, this is per agent."),
    )
    prefer_opus = models.BooleanField(
        _("prefer Opus"),
        default=False,
        help_text=_("Transcode the phone's G.711 to Opus toward the app, even when the app could take G.711."),
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = SipMappingQuerySet.as_manager()

    class Meta:
        ordering = ["sip_uri"]
        verbose_name = _("SIP mapping")
        verbose_name_plural = _("SIP mappings")

    def __str__(self) -> str:
        return self.sip_uri

    def clean(self) -> None:
        try:
            self.sip_uri = normalise(self.sip_uri)
        except InvalidSipUri as exc:
            # sip.uri is Django-free, so its detail stays English inside a translated sentence.
            message = _("Enter a SIP URI such as sip:vendas@empresa.com (%(error)s).")
            raise ValidationError({"sip_uri": message % {"error": exc}}) from None

    def save(self, *args: object, **kwargs: object) -> None:
        # Normalise here too, so that code paths without full_clean() keep the key unique.
        uri = SipUri.from_header(self.sip_uri).normalised()
        self.sip_uri = str(uri)
        self.sip_user = uri.user
        super().save(*args, **kwargs)
