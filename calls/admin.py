from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.utils.translation import gettext_lazy as _

from mappings.admin import SecretModelForm
from mappings.scoping import DepartmentScopedAdmin

from .ami_service import AmiService
from .export import DEFAULT_COLUMNS, csv_response
from .models import Call, CallEvent, CallLeg, Pbx


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class CallLegInline(ReadOnlyInline):
    model = CallLeg
    fields = [
        "kind",
        "channel",
        "uniqueid",
        "state",
        "caller_number",
        "connected_number",
        "created_at",
        "answered_at",
        "ended_at",
        "hangup_cause",
    ]
    readonly_fields = fields


class CallEventInline(ReadOnlyInline):
    model = CallEvent
    verbose_name_plural = _("timeline")
    fields = ["at", "kind", "actor", "payload"]
    readonly_fields = fields
    fk_name = "call"


@admin.register(Call)
class CallAdmin(DepartmentScopedAdmin):
    list_display = [
        "started_at",
        "direction",
        "caller_number",
        "dialed",
        "department",
        "state",
        "disposition",
        "ring_seconds",
        "talk_seconds",
        "duration_seconds",
    ]
    list_filter = ["direction", "state", "disposition", "department", "started_at"]
    search_fields = [
        "caller_number",
        "caller_e164",
        "caller_name",
        "dialed",
        "linkedid",
        "uniqueid",
        "sip_call_id",
        "cc_session_id",
    ]
    date_hierarchy = "started_at"
    list_select_related = ["department"]
    inlines = [CallLegInline, CallEventInline]
    actions = ["export_csv"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "direction",
                    "state",
                    "department",
                    "mapping",
                    "caller_number",
                    "caller_e164",
                    "caller_name",
                    "dialed",
                ]
            },
        ),
        (
            _("Times"),
            {
                "fields": [
                    "started_at",
                    "ringing_at",
                    "answered_at",
                    "ended_at",
                    "ring_seconds",
                    "talk_seconds",
                    "duration_seconds",
                ]
            },
        ),
        (
            _("Outcome"),
            {
                "fields": [
                    "disposition",
                    "hangup_cause",
                    "hangup_cause_text",
                    "sip_status",
                    "cc_reject_reason",
                    "end_reason",
                    "transfer_chain",
                ]
            },
        ),
        (
            _("SIP leg"),
            {"fields": ["sip_channel", "sip_codec", "sip_encrypted", "sip_packet_loss", "sip_jitter_ms"]},
        ),
        (
            _("App leg"),
            {
                "fields": [
                    "agent_cc_user_id",
                    "agents_ringing",
                    "app_state",
                    "app_codec",
                    "app_encrypted",
                    "app_packet_loss",
                    "app_jitter_ms",
                ]
            },
        ),
        (_("Ids"), {"fields": ["linkedid", "uniqueid", "sip_call_id", "cc_session_id"]}),
    ]

    @admin.action(description=_("Export selected calls as CSV"), permissions=["export"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet) -> StreamingHttpResponse:
        # The queryset is already narrowed by the changelist's filters, search and the
        # operator's departments (get_queryset).
        return csv_response(queryset, DEFAULT_COLUMNS, bom=bool(request.POST.get("bom")))

    def has_export_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("calls.export_call")

    # A CDR is a record of what happened: nobody edits one through the UI.
    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        return [f.name for f in Call._meta.fields if f.name != "id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(CallEvent)
class CallEventAdmin(DepartmentScopedAdmin):
    list_display = ["at", "kind", "call", "department", "actor_display"]
    list_filter = ["kind", "department", "at"]
    search_fields = ["kind", "call__caller_number", "call__linkedid", "call__sip_call_id"]
    date_hierarchy = "at"
    list_select_related = ["call", "department", "actor"]

    @admin.display(description=_("actor"))
    def actor_display(self, obj: CallEvent) -> str:
        return obj.actor_label

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        return [f.name for f in CallEvent._meta.fields if f.name != "id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(Pbx)
class PbxAdmin(admin.ModelAdmin):
    form = SecretModelForm
    list_display = ["name", "host", "port", "username", "context", "enabled", "ami_status"]
    fields = ["name", "host", "port", "username", "secret", "context", "enabled"]

    @admin.display(description=_("AMI link"))
    def ami_status(self, obj: Pbx) -> str:
        status = AmiService(obj.name).status()
        if not status.get("listener"):
            return _("no listener")
        if not status.get("connected"):
            return _("disconnected")
        latency = status.get("latency_ms")
        return _("connected") + (f" ({latency:.0f} ms)" if latency is not None else "")
