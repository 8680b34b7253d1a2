"""CDR CSV export: the filters, the columns, and a streamed writer that never holds the rows.

The admin action and the `/calls/export.csv` URL share all of it.
"""

import csv
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from django import forms
from django.conf import settings
from django.db.models import Q, QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from mappings.models import Department

from .models import Call, Direction, Disposition
from .numbers import mask

CHUNK_SIZE = 2000  # rows per database round trip; a server-side cursor on PostgreSQL


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    fields: tuple[str, ...]  # what to fetch from the database
    render: Callable[..., Any] | None = None  # values of `fields` -> cell; default: the one value
    masked: bool = False  # a caller number that CDR_EXPORT_MASK_DIGITS hides


def _iso(value: datetime | None) -> str:
    return timezone.localtime(value).isoformat(timespec="seconds") if value else ""


COLUMNS: dict[str, Column] = {
    c.key: c
    for c in [
        Column("id", "id", ("id",)),
        Column("direction", "direction", ("direction",)),
        Column("department", "department", ("department__slug",)),
        Column("mapping", "mapping", ("mapping__sip_uri",)),
        Column("caller_number", "caller_number", ("caller_number",), masked=True),
        Column("caller_e164", "caller_e164", ("caller_e164",), masked=True),
        Column("caller_name", "caller_name", ("caller_name",)),
        Column("dialed", "dialed", ("dialed",)),
        Column("agent", "agent_cc_user_id", ("agent_cc_user_id",)),
        Column("started_at", "started_at", ("started_at",), _iso),
        Column("ringing_at", "ringing_at", ("ringing_at",), _iso),
        Column("answered_at", "answered_at", ("answered_at",), _iso),
        Column("ended_at", "ended_at", ("ended_at",), _iso),
        Column("ring_seconds", "ring_seconds", ("ring_seconds",)),
        Column("talk_seconds", "talk_seconds", ("talk_seconds",)),
        Column("duration_seconds", "duration_seconds", ("duration_seconds",)),
        Column("disposition", "disposition", ("disposition",)),
        Column("sip_status", "sip_status", ("sip_status",)),
        Column("hangup_cause", "q850_cause", ("hangup_cause",)),
        Column("cc_reject_reason", "cc_reject_reason", ("cc_reject_reason",)),
        Column("end_reason", "end_reason", ("end_reason",)),
        Column("sip_codec", "sip_codec", ("sip_codec",)),
        Column("sip_encrypted", "sip_encrypted", ("sip_encrypted",)),
        Column("sip_packet_loss", "sip_packet_loss_pct", ("sip_packet_loss",)),
        Column("sip_jitter_ms", "sip_jitter_ms", ("sip_jitter_ms",)),
        Column("app_codec", "app_codec", ("app_codec",)),
        Column("app_encrypted", "app_encrypted", ("app_encrypted",)),
        Column("app_packet_loss", "app_packet_loss_pct", ("app_packet_loss",)),
        Column("app_jitter_ms", "app_jitter_ms", ("app_jitter_ms",)),
        Column(
            "transfer_chain",
            "transfer_chain",
            ("transfer_chain",),
            lambda chain: " > ".join(
                str(step.get("to", step)) if isinstance(step, dict) else str(step) for step in chain or []
            ),
        ),
        Column("linkedid", "linkedid", ("linkedid",)),
        Column("uniqueid", "uniqueid", ("uniqueid",)),
        Column("sip_call_id", "sip_call_id", ("sip_call_id",)),
        Column("cc_session_id", "cc_session_id", ("cc_session_id",)),
    ]
}
DEFAULT_COLUMNS = [
    "id",
    "direction",
    "department",
    "caller_number",
    "caller_e164",
    "caller_name",
    "dialed",
    "agent",
    "started_at",
    "answered_at",
    "ended_at",
    "ring_seconds",
    "talk_seconds",
    "duration_seconds",
    "disposition",
    "sip_status",
    "hangup_cause",
    "cc_reject_reason",
]

# Digits, '+', '#' and the '*' wildcard; anything else in a number pattern is a mistake.
_PATTERN_RE = re.compile(r"^[0-9+#*\s().-]{1,40}$")


class ExportFilterForm(forms.Form):
    """The filters of the export URL. Errors become a 400 with their messages."""

    date_from = forms.DateTimeField(required=False, label=_("from"))
    date_to = forms.DateTimeField(required=False, label=_("to"))
    department = forms.SlugField(required=False, label=_("department"))
    direction = forms.ChoiceField(required=False, choices=[("", ""), *Direction.choices], label=_("direction"))
    disposition = forms.ChoiceField(
        required=False, choices=[("", ""), *Disposition.choices], label=_("disposition")
    )
    number = forms.CharField(
        required=False,
        max_length=40,
        label=_("caller or number"),
        help_text=_("Digits, with * as a wildcard: +5511*, *4321. Without *, any number containing it."),
    )
    min_duration = forms.IntegerField(
        required=False, min_value=0, max_value=10**7, label=_("minimum duration (s)")
    )
    columns = forms.CharField(required=False, label=_("columns"), help_text=_("Comma-separated column keys."))
    bom = forms.BooleanField(required=False, label=_("UTF-8 BOM (for Excel)"))

    def __init__(self, *args: Any, departments: QuerySet | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.departments = departments if departments is not None else Department.objects.all()

    def clean_department(self) -> Department | None:
        slug = self.cleaned_data["department"]
        if not slug:
            return None
        department = self.departments.filter(slug=slug).first()
        if department is None:
            # Same answer for "doesn't exist" and "not yours": no probing other departments.
            raise forms.ValidationError(_("Unknown department: %(slug)s"), params={"slug": slug})
        return department

    def clean_number(self) -> str:
        value = self.cleaned_data["number"].strip()
        if value and not _PATTERN_RE.match(value):
            raise forms.ValidationError(_("Use digits, +, # and * only."))
        return value

    def clean_columns(self) -> list[str]:
        raw = self.cleaned_data["columns"]
        if not raw:
            return list(DEFAULT_COLUMNS)
        keys = [k.strip() for k in raw.split(",") if k.strip()]
        unknown = [k for k in keys if k not in COLUMNS]
        if unknown:
            raise forms.ValidationError(
                _("Unknown column(s): %(unknown)s. Known: %(known)s"),
                params={"unknown": ", ".join(unknown), "known": ", ".join(COLUMNS)},
            )
        return keys

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError(_("'from' is after 'to'."))
        return data

    def filter(self, queryset: QuerySet) -> QuerySet:
        """Apply the cleaned filters to a queryset of calls."""
        data = self.cleaned_data
        if data.get("date_from"):
            queryset = queryset.filter(started_at__gte=data["date_from"])
        if data.get("date_to"):
            end = data["date_to"]
            # A bare date means "to the end of that day".
            raw = self.data.get("date_to", "")
            if isinstance(raw, str) and len(raw.strip()) == 10 and end.time() == time(0, 0):
                end = end.replace(hour=23, minute=59, second=59, microsecond=999999)
            queryset = queryset.filter(started_at__lte=end)
        if data.get("department"):
            queryset = queryset.filter(department=data["department"])
        if data.get("direction"):
            queryset = queryset.filter(direction=data["direction"])
        if data.get("disposition"):
            queryset = queryset.filter(disposition=data["disposition"])
        if data.get("min_duration") is not None:
            queryset = queryset.filter(duration_seconds__gte=data["min_duration"])
        if data.get("number"):
            queryset = queryset.filter(number_q(data["number"]))
        return queryset


def number_q(pattern: str) -> Q:
    """Match a number pattern against the caller (as received and E.164) and the dialled number."""
    fields = ("caller_number", "caller_e164", "dialed")
    cleaned = re.sub(r"[\s().-]", "", pattern)
    if "*" in cleaned:
        regex = "^" + ".*".join(re.escape(part) for part in cleaned.split("*")) + "$"
        lookups = [Q(**{f"{f}__regex": regex}) for f in fields]
    else:
        lookups = [Q(**{f"{f}__contains": cleaned}) for f in fields]
    q = lookups[0]
    for other in lookups[1:]:
        q |= other
    return q


class _Echo:
    """A file-like object whose write() returns what it was given, for csv.writer."""

    def write(self, value: str) -> str:
        return value


def rows(queryset: QuerySet, columns: Iterable[str], mask_digits: int = 0) -> Iterator[list[Any]]:
    """Yield one list of cells per call, fetching only the needed fields, in chunks."""
    cols = [COLUMNS[key] for key in columns]
    fields: list[str] = []
    for col in cols:
        fields.extend(f for f in col.fields if f not in fields)
    tz = timezone.get_current_timezone()  # once: localtime() per cell costs a context lookup

    def render_datetime(value: datetime | None) -> str:
        return value.astimezone(tz).isoformat(timespec="seconds") if value else ""

    # Per column: where its values sit in a row, how to render them, whether to mask.
    plan = [
        (
            [fields.index(f) for f in col.fields],
            render_datetime if col.render is _iso else col.render,
            mask_digits if col.masked else 0,
        )
        for col in cols
    ]
    for values in queryset.values_list(*fields).iterator(chunk_size=CHUNK_SIZE):
        out = []
        for positions, render, digits in plan:
            cell = render(*[values[i] for i in positions]) if render else values[positions[0]]
            if cell is None:
                cell = ""
            elif digits:
                cell = mask(str(cell), digits)
            out.append(cell)
        yield out


def stream_csv(queryset: QuerySet, columns: list[str], *, bom: bool = False) -> Iterator[str]:
    writer = csv.writer(_Echo())
    if bom:
        yield "\ufeff"
    yield writer.writerow([COLUMNS[key].header for key in columns])
    for row in rows(queryset, columns, settings.CDR_EXPORT_MASK_DIGITS):
        yield writer.writerow(row)


def csv_response(queryset: QuerySet, columns: list[str], *, bom: bool = False) -> StreamingHttpResponse:
    # Oldest first, the way a ledger reads; pk breaks ties so chunks never overlap.
    ordered = queryset.order_by("started_at", "pk")
    response = StreamingHttpResponse(
        stream_csv(ordered, columns, bom=bom), content_type="text/csv; charset=utf-8"
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="ccbridge-cdr-{stamp}.csv"'
    return response


def export_for_user(user: Any, params: Any) -> tuple[StreamingHttpResponse | None, dict]:
    """Build the export response for a user and request parameters, or return form errors."""
    form = ExportFilterForm(
        params,
        departments=Department.objects.all()
        if user.is_superuser
        else Department.objects.filter(operators=user),
    )
    if not form.is_valid():
        return None, form.errors.get_json_data()
    queryset = form.filter(Call.objects.for_user(user))
    return csv_response(queryset, form.cleaned_data["columns"], bom=form.cleaned_data["bom"]), {}
