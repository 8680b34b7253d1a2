"""Sandbox users and sessions: just enough ConnectyCube state for the SDK to log in and call."""

import secrets
from datetime import timedelta

from django.contrib.auth.hashers import check_password, make_password
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

# Real ConnectyCube sessions expire after two hours without requests.
SESSION_TTL = timedelta(hours=2)


def new_token() -> str:
    """Return a 40-hex session token shaped like ConnectyCube's."""
    return secrets.token_hex(20)


class SandboxUser(models.Model):
    """A ConnectyCube user of the sandbox; `id` is the ConnectyCube user id."""

    id = models.PositiveIntegerField(_("ConnectyCube user id"), primary_key=True)
    login = models.CharField(_("login"), max_length=100, unique=True)
    password = models.CharField(_("password"), max_length=128, editable=False)
    full_name = models.CharField(_("full name"), max_length=200, blank=True)
    email = models.EmailField(_("email"), blank=True)
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("sandbox user")
        verbose_name_plural = _("sandbox users")

    def __str__(self) -> str:
        return f"{self.login} ({self.id})"

    def set_password(self, raw: str) -> None:
        """Store the password hashed; the sandbox only ever checks it."""
        self.password = make_password(raw)

    def check_password(self, raw: str) -> bool:
        """Return True if `raw` is the user's password."""
        return bool(self.password) and check_password(raw, self.password)

    def as_json(self) -> dict:
        """Return the user in the REST API's shape."""
        stamp = self.updated.strftime("%Y-%m-%dT%H:%M:%SZ") if self.updated else None
        return {
            "id": self.id, "full_name": self.full_name, "email": self.email or None,
            "login": self.login, "phone": None, "website": None,
            "created_at": self.created.strftime("%Y-%m-%dT%H:%M:%SZ") if self.created else None,
            "updated_at": stamp, "last_request_at": stamp, "external_user_id": None,
            "facebook_id": None, "twitter_id": None, "custom_data": "", "blob_id": None,
            "avatar": "", "user_tags": None,
        }


class SandboxSession(models.Model):
    """A REST session; app-only sessions have no user."""

    token = models.CharField(_("token"), max_length=64, unique=True, default=new_token)
    user = models.ForeignKey(
        SandboxUser, verbose_name=_("user"), null=True, blank=True, on_delete=models.CASCADE,
        related_name="sessions",
    )
    app_id = models.PositiveIntegerField(_("application id"))
    created = models.DateTimeField(_("created"), auto_now_add=True)
    expires = models.DateTimeField(_("expires"))

    class Meta:
        ordering = ["-created"]
        verbose_name = _("sandbox session")
        verbose_name_plural = _("sandbox sessions")

    def __str__(self) -> str:
        return f"session of {self.user or 'the app'} ({self.app_id})"

    @property
    def user_id_or_zero(self) -> int:
        return self.user_id or 0

    def touch(self) -> None:
        """Extend the session by the inactivity TTL."""
        self.expires = timezone.now() + SESSION_TTL
        SandboxSession.objects.filter(pk=self.pk).update(expires=self.expires)

    def as_json(self) -> dict:
        """Return the session in the REST API's shape."""
        data = {
            "id": self.pk, "user_id": self.user_id_or_zero, "application_id": self.app_id,
            "token": self.token, "ts": int(self.created.timestamp()),
            "created_at": self.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "updated_at": self.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if self.user is not None:
            data["user"] = self.user.as_json()
        return data
