"""Lookups and checks on mappings that the other roles (edge, AMI listener, admin) share."""

import asyncio
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q
from django.utils.translation import gettext as _

from connectycube.errors import ConnectyCubeError
from connectycube.rest import RestClient
from sip.uri import InvalidSipUri, SipUri, channel_endpoint

from .models import SipMapping

logger = logging.getLogger(__name__)


def find_by_sip_uri(value: str) -> SipMapping | None:
    """Find the mapping for a raw URI, a To header or an Asterisk channel name.

    The full key (`sip:vendas@empresa.com`) wins. Failing that, the user part
    alone is enough when exactly one mapping has it: Asterisk's Request-URI to
    the trunk carries the trunk's host (`sip:vendas@127.0.0.1:5070`), and a
    channel name (`PJSIP/vendas-00000001`) carries no host at all.
    Disabled mappings are returned too; the caller decides (480 vs 404).
    """
    endpoint = channel_endpoint(value)
    if endpoint is not None:
        return _unique_by_user(endpoint)
    try:
        uri = SipUri.from_header(value).normalised()
    except InvalidSipUri:
        text = value.strip().lower()
        # A bare extension or user name ("vendas").
        return _unique_by_user(text) if text and "@" not in text and ":" not in text else None
    mapping = SipMapping.objects.select_related("department", "app").filter(sip_uri=str(uri)).first()
    return mapping or _unique_by_user(uri.user)


def _unique_by_user(user: str) -> SipMapping | None:
    if not user:
        return None
    found = list(SipMapping.objects.select_related("department", "app").filter(Q(sip_user=user))[:2])
    return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class CredentialCheck:
    ok: bool
    message: str
    user_id: int | None = None


def validate_credentials(mapping: SipMapping) -> CredentialCheck:
    """Log in to the mapping's ConnectyCube app with its login and password (`POST /session`)."""
    try:
        password = mapping.cc_password.reveal() if mapping.cc_password else ""
        app = mapping.app.config()
    except Exception as exc:  # a missing or wrong key: SecretDecryptionError / ImproperlyConfigured
        return CredentialCheck(False, str(exc))
    if not password:
        return CredentialCheck(False, _("No ConnectyCube password is stored for this mapping."))
    return asyncio.run(_login(app, mapping.cc_login, password))


async def _login(app, login: str, password: str) -> CredentialCheck:
    async with RestClient(app, timeout=settings.CONNECTYCUBE_HTTP_TIMEOUT) as client:
        try:
            session = await client.create_session(login=login, password=password)
        except ConnectyCubeError as exc:
            logger.info("ConnectyCube credential check failed for app %s: %s", app.app_id, exc.message)
            return CredentialCheck(False, exc.message)
        try:
            await client.destroy_session()
        except ConnectyCubeError:
            pass  # the login worked; a stale session expires by itself
        message = _("Logged in as ConnectyCube user %(id)s.") % {"id": session.user_id}
        return CredentialCheck(True, message, session.user_id)
