"""The agent app: a page that runs the official ConnectyCube JS SDK for the agents of a department.

The page needs no Django login: agents sign in with their ConnectyCube login. It only receives
what any ConnectyCube client app embeds anyway (app id, auth key, endpoints), never the
departments' passwords.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from mappings.models import ConnectyCubeApp, SipMapping

SANDBOX_PATH = "/cc-sandbox/"


def _get_app_for_request(request: HttpRequest) -> ConnectyCubeApp:
    """Return the app named by `?app=<pk>`, else the first enabled mapping's, else the first app."""
    pk = request.GET.get("app")
    if pk:
        if not pk.isdigit():
            raise Http404("app must be a number")
        return get_object_or_404(ConnectyCubeApp, pk=int(pk))
    mapping = SipMapping.objects.filter(enabled=True).select_related("app").order_by("pk").first()
    if mapping is not None:
        return mapping.app
    app = ConnectyCubeApp.objects.order_by("pk").first()
    if app is None:
        raise Http404("No ConnectyCube application is configured yet.")
    return app


def _is_sandbox(app: ConnectyCubeApp) -> bool:
    return SANDBOX_PATH in app.api_url or SANDBOX_PATH in app.chat_url


def _ice_servers(app: ConnectyCubeApp) -> list[dict[str, Any]] | None:
    """Return the ICE servers to configure, or None to keep the SDK's defaults."""
    if settings.AGENT_ICE_SERVERS is not None:
        return settings.AGENT_ICE_SERVERS
    # Sandbox peers meet on loopback or a LAN; the SDK's public STUN/TURN would only add lookups.
    return [] if _is_sandbox(app) else None


def _positive_int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and int(value) > 0 else None


def agent_config(request: HttpRequest, app: ConnectyCubeApp) -> dict[str, Any]:
    """Return the SDK configuration and page options the agent app starts with."""
    departments = {
        str(m.cc_user_id): m.display_name
        for m in SipMapping.objects.filter(app=app, cc_user_id__isnull=False).order_by("pk")
    }
    return {
        "appId": app.app_id,
        "authKey": app.auth_key,
        "apiUrl": app.api_url.rstrip("/"),
        "chatUrl": app.chat_url,
        "chatDomain": app.chat_domain,
        "iceServers": _ice_servers(app),
        "sandbox": _is_sandbox(app),
        # Seconds the SDK rings before giving up (answerTimeInterval); tests shorten it.
        "answerTimeout": _positive_int(request.GET.get("answer_timeout")) or 60,
        # ConnectyCube user ids of the departments' bridge accounts: "<department> calling...".
        "departments": departments,
        "sdkUrl": settings.STATIC_URL.rstrip("/") + "/vendor/connectycube/connectycube.min.js",
    }


def agent_strings() -> dict[str, str]:
    """Return the translated strings app.js shows (placeholders in braces)."""
    return {
        "idle": _("Ready"),
        "online": _("Online"),
        "waiting": _("Waiting for calls"),
        "offline": _("Signed out"),
        "signingIn": _("Signing in..."),
        "calling": _("{name} calling..."),
        "dialing": _("Calling {name}..."),
        "ringing": _("Ringing"),
        "connecting": _("Connecting..."),
        "connected": _("In call"),
        "ended": _("Call ended"),
        "reasonHungUpLocal": _("You hung up"),
        "reasonHungUpRemote": _("The other side hung up"),
        "reasonRejectedLocal": _("You declined the call"),
        "reasonRejectedRemote": _("The call was declined"),
        "reasonNoAnswer": _("No answer"),
        "reasonMissed": _("Missed call: the caller gave up"),
        "reasonElsewhere": _("Answered on another device"),
        "reasonFailed": _("The connection failed"),
        "reasonClosed": _("The call was closed"),
        "reasonBusy": _("Busy: already in a call"),
        "errorLogin": _("Sign-in failed: {error}"),
        "errorChat": _("Chat connection failed: {error}"),
        "errorMedia": _("Microphone unavailable: {error}"),
        "errorCall": _("Call failed: {error}"),
        "errorNoSdk": _("The ConnectyCube SDK did not load. Run npm ci on the server."),
        "errorUserId": _("Enter a ConnectyCube user id."),
        "errorUnreachable": _("Cannot reach ConnectyCube at {url}"),
        "signedInAs": _("Signed in as {name} (id {id})"),
        "user": _("User {id}"),
        "mute": _("Mute"),
        "unmute": _("Unmute"),
        "dtmfSent": _("Sent {digits}"),
        "dtmfReceived": _("Received {digits}"),
        "transferTo": _("Transfer to which extension?"),
    }


@require_GET
def agent_app(request: HttpRequest) -> HttpResponse:
    """Render the agent app for the chosen ConnectyCube app."""
    app = _get_app_for_request(request)
    return render(
        request,
        "agent/app.html",
        {"app": app, "agent_config": agent_config(request, app), "agent_strings": agent_strings()},
    )
