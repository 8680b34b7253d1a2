from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from mappings.scoping import DepartmentScopedAdmin

from .models import Call, CallEvent, CallLeg


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
