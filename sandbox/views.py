"""REST side of the sandbox, per protocol doc section 7 (shapes as the SDK 6.x reads them).

Apps are checked against `mappings.ConnectyCubeApp` rows: a session needs a row with that app id
and auth key, so the sandbox serves exactly the apps the admin configured.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from connectycube.signalling import Signal, SignalType, encode_message
from connectycube.stanza import new_id
from mappings.models import ConnectyCubeApp

from .models import SESSION_TTL, SandboxSession, SandboxUser
from .xmpp_consumer import bare_group, deliver_event

logger = logging.getLogger(__name__)

ALLOWED_HEADERS = "Content-Type, CB-Token, CB-SDK, CB-AuthKey"
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
SESSION_MISSING = {"errors": {"base": ["Required session does not exist"]}}
UNAUTHORIZED = {"errors": ["Unauthorized"]}

View = Callable[..., HttpResponse]


class ApiError(Exception):
    """Answer the request with `status` and the JSON `body`."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _cors(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    # Apps on any origin use the sandbox with a token header, never cookies.
    response["Access-Control-Allow-Origin"] = request.headers.get("Origin", "*")
    response["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
    response["Access-Control-Allow-Methods"] = ALLOWED_METHODS
    response["Access-Control-Max-Age"] = "600"
    response["Vary"] = "Origin"
    return response


def api(*methods: str) -> Callable[[View], View]:
    """Wrap a view: CORS, preflight, method check, JSON errors in ConnectyCube's shape."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method == "OPTIONS":
                return _cors(request, HttpResponse(status=204))
            try:
                if request.method not in methods:
                    raise ApiError(405, {"errors": [f"{request.method} is not allowed here"]})
                response = view(request, *args, **kwargs)
            except ApiError as exc:
                response = JsonResponse(exc.body, status=exc.status, safe=False)
            return _cors(request, response)

        return wrapper

    return decorate


def _body(request: HttpRequest) -> dict[str, Any]:
    if request.method in ("GET", "DELETE", "HEAD") or not request.body:
        return {}
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, {"errors": ["The body is not valid JSON"]}) from None
    if not isinstance(data, dict):
        raise ApiError(400, {"errors": ["The body must be a JSON object"]})
    return data


def _get_session_for_request(request: HttpRequest) -> SandboxSession:
    """Return the live session named by CB-Token, or answer 401 like ConnectyCube."""
    token = request.headers.get("CB-Token", "")
    session = (
        SandboxSession.objects.select_related("user")
        .filter(token=token, expires__gt=timezone.now())
        .first()
        if token
        else None
    )
    if session is None:
        raise ApiError(401, SESSION_MISSING)
    session.touch()
    return session


def _get_user_session_for_request(request: HttpRequest) -> SandboxSession:
    session = _get_session_for_request(request)
    if session.user is None:
        raise ApiError(403, {"errors": ["This action needs a user session"]})
    return session


def _find_user(credentials: Any) -> SandboxUser:
    if not isinstance(credentials, dict):
        raise ApiError(422, {"errors": ["user must be an object"]})
    password = str(credentials.get("password") or "")
    if credentials.get("login"):
        user = SandboxUser.objects.filter(login=str(credentials["login"])).first()
    elif credentials.get("email"):
        user = SandboxUser.objects.filter(email__iexact=str(credentials["email"])).first()
    else:
        raise ApiError(422, {"errors": ["login or email is required"]})
    if user is None or not user.check_password(password):
        raise ApiError(401, UNAUTHORIZED)
    return user


@api("POST", "GET", "DELETE")
def session_view(request: HttpRequest) -> HttpResponse:
    """Create (POST), show (GET) or destroy (DELETE) a session."""
    if request.method == "GET":
        return JsonResponse({"session": _get_session_for_request(request).as_json()})
    if request.method == "DELETE":
        _get_session_for_request(request).delete()
        return HttpResponse("", content_type="text/plain")
    data = _body(request)
    try:
        app_id = int(data.get("application_id"))
    except (TypeError, ValueError):
        raise ApiError(422, {"errors": ["application_id is required"]}) from None
    # nonce/timestamp/signature (legacy SDKs) are accepted and ignored, as documented.
    if not ConnectyCubeApp.objects.filter(app_id=app_id, auth_key=str(data.get("auth_key"))).exists():
        logger.info("sandbox: session refused for unknown app %s or wrong auth key", app_id)
        raise ApiError(401, UNAUTHORIZED)
    user = _find_user(data["user"]) if "user" in data else None
    session = SandboxSession.objects.create(
        user=user, app_id=app_id, expires=timezone.now() + SESSION_TTL
    )
    return JsonResponse({"session": session.as_json()}, status=201)


@api("POST", "DELETE")
def login_view(request: HttpRequest) -> HttpResponse:
    """Attach a user to the current session (POST) or detach it (DELETE)."""
    session = _get_session_for_request(request)
    if request.method == "DELETE":
        SandboxSession.objects.filter(pk=session.pk).update(user=None)
        return HttpResponse("", content_type="text/plain")
    user = _find_user(_body(request))
    SandboxSession.objects.filter(pk=session.pk).update(user=user)
    return JsonResponse({"user": user.as_json()}, status=202)


@api("GET")
def user_view(request: HttpRequest, user_id: int) -> HttpResponse:
    """Show one user."""
    _get_session_for_request(request)
    user = SandboxUser.objects.filter(pk=user_id).first()
    if user is None:
        raise ApiError(404, {"errors": {"base": ["Entity you are looking for was not found."]}})
    return JsonResponse({"user": user.as_json()})


@api("GET")
def users_v2_view(request: HttpRequest) -> HttpResponse:
    """List users, filtered by `id[in][]`/`id[in]` and `login[in][]`, like `users.getV2`."""
    _get_session_for_request(request)
    ids = request.GET.getlist("id[in][]") + request.GET.get("id[in]", "").split(",")
    logins = request.GET.getlist("login[in][]") + request.GET.get("login[in]", "").split(",")
    query = SandboxUser.objects.all()
    ids = [int(i) for i in ids if i.strip().isdigit()]
    logins = [x for x in logins if x]
    if ids or logins:
        query = query.filter(Q(pk__in=ids) | Q(login__in=logins))
    try:
        limit = max(1, min(int(request.GET.get("limit", 100)), 100))
        skip = max(0, int(request.GET.get("offset", request.GET.get("skip", 0))))
    except ValueError:
        raise ApiError(422, {"errors": ["limit and offset must be integers"]}) from None
    total = query.count()
    items = [u.as_json() for u in query[skip:skip + limit]]
    return JsonResponse({"limit": limit, "skip": skip, "total_entries": total, "items": items})


@api("POST")
def events_view(request: HttpRequest) -> HttpResponse:
    """Accept a push event; the sandbox delivers no pushes, it only answers like the API."""
    session = _get_user_session_for_request(request)
    event = _body(request).get("event")
    if not isinstance(event, dict):
        raise ApiError(422, {"errors": ["event is required"]})
    logger.info("sandbox: push event from user %s to %s (not delivered)", session.user_id,
                (event.get("user") or {}).get("ids"))
    now = timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    return JsonResponse(
        [{"event": {"id": int(timezone.now().timestamp() * 1000) % 10**9, "event_type": "one_shot",
                    "notification_type": event.get("notification_type", "push"),
                    "environment": event.get("environment", "development"),
                    "created_at": now, "updated_at": now, "active": True}}],
        safe=False, status=201,
    )


@api("POST")
def subscriptions_view(request: HttpRequest) -> HttpResponse:
    """Accept a push subscription and echo it back in the API's list shape."""
    _get_user_session_for_request(request)
    data = _body(request)
    channel = data.get("notification_channel", "web")
    device = data.get("device") if isinstance(data.get("device"), dict) else {}
    return JsonResponse(
        [{"subscription": {"id": int(timezone.now().timestamp() * 1000) % 10**9,
                           "notification_channel": {"name": channel}, "device": device}}],
        safe=False, status=201,
    )


@api("POST")
def call_reject_view(request: HttpRequest) -> HttpResponse:
    """Reject a call over HTTP: deliver a `reject` signal to the caller on the user's behalf."""
    session = _get_user_session_for_request(request)
    data = _body(request)
    try:
        recipient = int(data["recipientId"])
        session_id = str(data["sessionID"])
    except (KeyError, TypeError, ValueError):
        raise ApiError(422, {"errors": ["sessionID and recipientId are required"]}) from None
    info = data.get("userInfo") if isinstance(data.get("userInfo"), dict) else {}
    app = ConnectyCubeApp.objects.filter(app_id=session.app_id).first()
    domain = app.chat_domain if app else "localhost"
    signal = Signal(
        signal_type=SignalType.REJECT, session_id=session_id, caller_id=recipient,
        opponents_ids=[session.user_id], user_info=info,
        platform=str(data.get("platform") or "web"),
    )
    sender = f"{session.user_id}-{session.app_id}@{domain}"
    frame = encode_message(signal, f"{recipient}-{session.app_id}@{domain}", new_id())
    frame = frame.replace("<message ", f'<message from="{sender}" ', 1)
    async_to_sync(get_channel_layer().group_send)(
        bare_group(recipient, session.app_id), deliver_event(frame, None)
    )
    return JsonResponse({})
