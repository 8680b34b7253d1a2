"""The live call board page and the operator actions it posts (JSON, CSRF-protected)."""

import json
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from mappings.models import Department

from . import ami_service
from .ami_service import AmiActionError, AmiService
from .board import snapshot
from .models import Call, Pbx

# action -> the permission it needs
ACTION_PERMISSIONS = {
    "hangup": "calls.hangup_call",
    "transfer": "calls.transfer_call",
    "attended_transfer": "calls.transfer_call",
    "bridge": "calls.bridge_call",
    "originate": "calls.originate_call",
}


@staff_member_required
def board(request: HttpRequest) -> HttpResponse:
    user = request.user
    calls = Call.objects.for_user(user).live().select_related("department").order_by("started_at")
    departments = Department.objects.all() if user.is_superuser else user.departments.all()
    can = {name: user.has_perm(perm) for name, perm in ACTION_PERMISSIONS.items()}
    return render(
        request,
        "calls/board.html",
        {
            **admin.site.each_context(request),
            "title": _("Live call board"),
            "is_nav_sidebar_enabled": False,  # the board wants the whole width
            "initial": {
                "calls": [snapshot(c) for c in calls[:500]],
                "departments": {d.pk: d.name for d in departments},
            },
            "can": can,
            "pbxes": Pbx.objects.filter(enabled=True),
        },
    )


def _json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"ok": False, "error": message}, status=status)


def _call_for(request: HttpRequest, pk: Any) -> Call | None:
    try:
        return Call.objects.for_user(request.user).select_related("pbx").get(pk=int(pk))
    except (Call.DoesNotExist, TypeError, ValueError):
        return None


def _extension(value: Any) -> str | None:
    text = str(value or "").strip()
    return text if text and len(text) <= 40 and all(c.isalnum() or c in "+*#-_" for c in text) else None


def _transferer(call: Call) -> str:
    """The channel whose bridge peer gets transferred: the answering leg, else the caller's."""
    legs = list(
        call.legs.filter(ended_at__isnull=True, kind="asterisk")
        .order_by("created_at", "pk")
        .values_list("channel", flat=True)
    )
    return legs[1] if len(legs) > 1 else (legs[0] if legs else call.sip_channel)


@login_required
@require_POST
def call_action(request: HttpRequest, action: str) -> JsonResponse:
    """Run one operator action on AMI. Body: JSON with call ids and targets."""
    perm = ACTION_PERMISSIONS.get(action)
    if perm is None:
        return _error(_("Unknown action."), 404)
    if not request.user.is_staff or not request.user.has_perm(perm):
        return _error(_("You do not have permission for this action."), 403)
    data = _json_body(request)
    try:
        if action == "originate":
            return _originate(request, data)
        call = _call_for(request, data.get("call"))
        if call is None or call.ended_at or call.pbx is None:
            return _error(_("That call is not live, or not yours to act on."), 404)
        service = AmiService(call.pbx.name)
        if action == "hangup":
            result = ami_service.hangup_channel(service, call.sip_channel, actor=request.user, call=call)
        elif action in ("transfer", "attended_transfer"):
            exten = _extension(data.get("exten"))
            if exten is None:
                return _error(_("Enter the extension to transfer to."))
            fn = ami_service.transfer_call if action == "transfer" else ami_service.attended_transfer
            result = fn(service, _transferer(call), exten, actor=request.user, call=call)
        else:  # bridge
            other = _call_for(request, data.get("other"))
            if other is None or other.ended_at or other.pk == call.pk:
                return _error(_("Pick another live call to bridge with."))
            result = ami_service.bridge_channels(
                service, call.sip_channel, other.sip_channel, actor=request.user, call=call
            )
    except AmiActionError as exc:
        return _error(str(exc), 502)
    return JsonResponse({"ok": True, "result": result})


def _originate(request: HttpRequest, data: dict[str, Any]) -> JsonResponse:
    extension, number = _extension(data.get("extension")), _extension(data.get("number"))
    if extension is None or number is None:
        return _error(_("Enter your extension and the number to call."))
    pbx = Pbx.objects.filter(enabled=True, pk=data.get("pbx") or 0).first() or Pbx.objects.filter(enabled=True).first()
    if pbx is None:
        return _error(_("No PBX is configured."), 404)
    result = ami_service.originate_call(AmiService(pbx.name, timeout=45), extension, number, actor=request.user)
    return JsonResponse({"ok": True, "result": result})
