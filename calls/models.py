"""The CDR (`Call`, with the Asterisk channels as `CallLeg` rows) and its audit trail (`CallEvent`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext, pgettext
from django.utils.translation import gettext_lazy as _

from mappings.fields import EncryptedSecretField

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser


class Direction(models.TextChoices):
    INBOUND = "inbound", _("Inbound (phone to app)")
    OUTBOUND = "outbound", _("Outbound (app to phone)")
    INTERNAL = "internal", _("Internal (PBX only)")


class CallState(models.TextChoices):
    RINGING = "ringing", _("Ringing")
    UP = "up", _("Up")
    HELD = "held", _("Held")
    TRANSFERRING = "transferring", _("Transferring")
    ENDED = "ended", _("Ended")


class Disposition(models.TextChoices):
    ANSWERED = "answered", _("Answered")
    NO_ANSWER = "no_answer", _("No answer")
    BUSY = "busy", _("Busy")
    FAILED = "failed", _("Failed")


class Pbx(models.Model):
    """An Asterisk or FreePBX server the AMI listener keeps a connection to."""

    name = models.SlugField(_("name"), max_length=50, unique=True)
    host = models.CharField(_("AMI host"), max_length=255, default="127.0.0.1")
    port = models.PositiveIntegerField(_("AMI port"), default=5038)
    username = models.CharField(_("AMI user"), max_length=100)
    secret = EncryptedSecretField(_("AMI secret"), blank=False)
    enabled = models.BooleanField(_("enabled"), default=True)
    context = models.CharField(
        _("dialplan context"),
        max_length=80,
        default="from-internal",
        help_text=_("Where transfers and click-to-call go (FreePBX: from-internal)."),
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("PBX")
        verbose_name_plural = _("PBXes")

    def __str__(self) -> str:
        return f"{self.name} ({self.host}:{self.port})"


class CallQuerySet(models.QuerySet):
    def for_user(self, user: AbstractBaseUser) -> CallQuerySet:
        if user.is_superuser:
            return self
        return self.filter(department__operators=user)

    def live(self) -> CallQuerySet:
        return self.exclude(state=CallState.ENDED)


class Call(models.Model):
    """One call, from the first channel to the last hangup: the CDR row with both legs."""

    direction = models.CharField(
        _("direction"), max_length=10, choices=Direction.choices, default=Direction.INBOUND
    )
    state = models.CharField(
        _("state"), max_length=15, choices=CallState.choices, default=CallState.RINGING, db_index=True
    )
    department = models.ForeignKey(
        "mappings.Department",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="calls",
        verbose_name=_("department"),
    )
    mapping = models.ForeignKey(
        "mappings.SipMapping",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="calls",
        verbose_name=_("mapping"),
    )

    pbx = models.ForeignKey(
        Pbx, on_delete=models.SET_NULL, null=True, blank=True, related_name="calls", verbose_name=_("PBX")
    )
    # Ids that tie the legs together. Linkedid is unique per PBX.
    # NULL, not "": calls that never touched Asterisk (app to bridge) must not collide.
    linkedid = models.CharField(  # noqa: DJ001
        _("Asterisk Linkedid"), max_length=64, null=True, blank=True, db_index=True  # the edge looks rows up by it
    )
    uniqueid = models.CharField(_("Asterisk Uniqueid"), max_length=64, blank=True, db_index=True)
    sip_call_id = models.CharField(_("SIP Call-ID"), max_length=255, blank=True, db_index=True)
    cc_session_id = models.CharField(_("ConnectyCube session id"), max_length=64, blank=True, db_index=True)

    # Who called what.
    caller_number = models.CharField(_("caller number (as received)"), max_length=64, blank=True)
    caller_e164 = models.CharField(_("caller number (E.164)"), max_length=20, blank=True, db_index=True)
    caller_name = models.CharField(_("caller name"), max_length=128, blank=True)
    dialed = models.CharField(_("dialled number or URI"), max_length=255, blank=True)

    # Times. Durations are stored at the end, as every CDR does, so exports can filter on them.
    started_at = models.DateTimeField(_("started"), default=timezone.now, db_index=True)
    ringing_at = models.DateTimeField(_("ringing"), null=True, blank=True)
    answered_at = models.DateTimeField(_("answered"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    ring_seconds = models.PositiveIntegerField(_("ring time (s)"), null=True, blank=True)
    talk_seconds = models.PositiveIntegerField(_("talk time (s)"), null=True, blank=True)
    duration_seconds = models.PositiveIntegerField(_("duration (s)"), null=True, blank=True, db_index=True)

    # How it ended.
    disposition = models.CharField(
        _("disposition"), max_length=10, choices=Disposition.choices, blank=True, db_index=True
    )
    hangup_cause = models.PositiveSmallIntegerField(_("Q.850 cause"), null=True, blank=True)
    hangup_cause_text = models.CharField(_("cause text"), max_length=100, blank=True)
    sip_status = models.PositiveSmallIntegerField(_("SIP status"), null=True, blank=True)
    cc_reject_reason = models.CharField(_("ConnectyCube reject reason"), max_length=100, blank=True)
    end_reason = models.CharField(_("end reason"), max_length=200, blank=True)

    # SIP leg (phone to bridge).
    sip_channel = models.CharField(_("Asterisk channel"), max_length=128, blank=True)
    sip_codec = models.CharField(_("SIP codec"), max_length=32, blank=True)
    sip_encrypted = models.BooleanField(_("SIP leg encrypted"), null=True, blank=True)
    sip_packet_loss = models.FloatField(_("SIP packet loss (%)"), null=True, blank=True)
    sip_jitter_ms = models.FloatField(_("SIP jitter (ms)"), null=True, blank=True)

    # App leg (bridge to ConnectyCube).
    agent_cc_user_id = models.PositiveBigIntegerField(_("answering agent"), null=True, blank=True)
    agents_ringing = models.JSONField(_("agents ringing"), default=list, blank=True)
    app_state = models.CharField(_("WebRTC state"), max_length=20, blank=True)
    app_codec = models.CharField(_("app codec"), max_length=32, blank=True)
    app_encrypted = models.BooleanField(_("app leg encrypted"), null=True, blank=True)
    app_packet_loss = models.FloatField(_("app packet loss (%)"), null=True, blank=True)
    app_jitter_ms = models.FloatField(_("app jitter (ms)"), null=True, blank=True)

    transfer_chain = models.JSONField(_("transfer chain"), default=list, blank=True)

    objects = CallQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(fields=["pbx", "linkedid"], name="call_unique_linkedid_per_pbx"),
        ]
        verbose_name = _("call")
        verbose_name_plural = _("calls")
        permissions = [
            ("hangup_call", _("Can hang up live calls")),
            ("transfer_call", _("Can transfer live calls")),
            ("originate_call", _("Can originate calls")),
            ("bridge_call", _("Can bridge calls")),
            ("export_call", _("Can export CDRs")),
        ]

    def __str__(self) -> str:
        who = self.caller_number or _("unknown caller")
        return f"{who} → {self.dialed or '?'} ({self.started_at:%Y-%m-%d %H:%M:%S})"

    def finish(self, *, at: datetime | None = None, disposition: str | None = None) -> None:
        """Close the call: set the end time, the durations and, if unset, the disposition."""
        self.ended_at = at or self.ended_at or timezone.now()
        self.state = CallState.ENDED
        if disposition:
            self.disposition = disposition
        elif not self.disposition:
            self.disposition = Disposition.ANSWERED if self.answered_at else Disposition.NO_ANSWER
        self.duration_seconds = _seconds(self.started_at, self.ended_at)
        ring_start = self.ringing_at or self.started_at
        self.ring_seconds = _seconds(ring_start, self.answered_at or self.ended_at)
        self.talk_seconds = _seconds(self.answered_at, self.ended_at) if self.answered_at else 0


def _seconds(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds()))


class CallLeg(models.Model):
    """One Asterisk channel of a call (Uniqueid), or the ConnectyCube leg."""

    class Kind(models.TextChoices):
        ASTERISK = "asterisk", _("Asterisk channel")
        APP = "app", _("ConnectyCube")

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="legs", verbose_name=_("call"))
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.ASTERISK)
    uniqueid = models.CharField(_("Uniqueid"), max_length=64, null=True, blank=True, db_index=True)  # noqa: DJ001
    channel = models.CharField(_("channel"), max_length=128, blank=True)
    state = models.CharField(_("state"), max_length=32, blank=True)
    caller_number = models.CharField(_("caller number"), max_length=64, blank=True)
    connected_number = models.CharField(_("connected number"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    answered_at = models.DateTimeField(_("answered"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    hangup_cause = models.PositiveSmallIntegerField(_("Q.850 cause"), null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        verbose_name = _("call leg")
        verbose_name_plural = _("call legs")

    def __str__(self) -> str:
        return self.channel or self.uniqueid or gettext("leg %(pk)s") % {"pk": self.pk}


class CallEventQuerySet(models.QuerySet):
    def for_user(self, user: AbstractBaseUser) -> CallEventQuerySet:
        if user.is_superuser:
            return self
        return self.filter(department__operators=user)

    def update(self, **kwargs: object) -> int:
        raise PermissionDenied("Call events are append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionDenied("Call events are append-only.")


class CallEvent(models.Model):
    """An append-only audit record: a state change of a call or an operator's action."""

    at = models.DateTimeField(_("time"), default=timezone.now, db_index=True)
    call = models.ForeignKey(
        Call, on_delete=models.PROTECT, null=True, blank=True, related_name="events", verbose_name=_("call")
    )
    # Kept on the event too: an event may have no call (an INVITE for an unknown URI),
    # and operators must still see only their department's.
    department = models.ForeignKey(
        "mappings.Department",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="call_events",
        verbose_name=_("department"),
    )
    kind = models.CharField(_("kind"), max_length=64, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="call_events",
        verbose_name=_("actor"),
        help_text=_("Empty when the system acted."),
    )
    payload = models.JSONField(_("payload"), default=dict, blank=True)

    objects = CallEventQuerySet.as_manager()

    class Meta:
        ordering = ["at", "pk"]
        verbose_name = _("call event")
        verbose_name_plural = _("call events")

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.kind}"

    @property
    def actor_label(self) -> str:
        return self.actor.get_username() if self.actor_id else pgettext("call event actor", "system")

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None and not self._state.adding:
            raise PermissionDenied("Call events are append-only.")
        if self.call_id and not self.department_id:
            self.department_id = (
                Call.objects.filter(pk=self.call_id).values_list("department_id", flat=True).first()
            )
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise PermissionDenied("Call events are append-only.")

    @classmethod
    def record(
        cls,
        kind: str,
        *,
        call: Call | None = None,
        actor: AbstractBaseUser | None = None,
        department_id: int | None = None,
        at: datetime | None = None,
        **payload: object,
    ) -> CallEvent:
        """Append an event that happened `at` (default: now). `payload` must be JSON-serialisable
        and hold no secrets."""
        return cls.objects.create(
            kind=kind,
            call=call,
            actor=actor if actor is not None and actor.is_authenticated else None,
            department_id=department_id or (call.department_id if call else None),
            at=at or timezone.now(),
            payload=payload,
        )
