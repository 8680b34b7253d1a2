"""CDR CSV export through real requests: content, filters, isolation, masking, streaming."""

import csv
import io
from datetime import timedelta

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone

from calls.models import Call, Direction, Disposition
from tests.conftest import make_operator

URL = "/calls/export.csv"


@pytest.fixture
def cdrs(departments):
    vendas, suporte = departments
    t0 = timezone.now().replace(microsecond=0) - timedelta(days=2)

    def call(dept, caller, minutes, disposition, duration, direction=Direction.INBOUND, **extra):
        c = Call(
            department=dept,
            caller_number=caller,
            caller_e164=caller,
            dialed=f"sip:{dept.slug}@empresa.com",
            direction=direction,
            started_at=t0 + timedelta(minutes=minutes),
            **extra,
        )
        c.answered_at = c.started_at + timedelta(seconds=5) if disposition == Disposition.ANSWERED else None
        c.finish(at=c.started_at + timedelta(seconds=duration), disposition=disposition)
        c.save()
        return c

    return {
        "a": call(vendas, "+5511987650001", 0, Disposition.ANSWERED, 125, caller_name='Silva, "Zé"'),
        "b": call(vendas, "+5511987650002", 10, Disposition.NO_ANSWER, 30),
        "c": call(vendas, "+5521987650003", 60 * 30, Disposition.BUSY, 3, direction=Direction.OUTBOUND),
        "d": call(suporte, "+5511987650004", 20, Disposition.ANSWERED, 300),
        "t0": t0,
    }


def read(response):
    assert isinstance(response, StreamingHttpResponse)
    body = b"".join(response.streaming_content).decode("utf-8")
    return body, list(csv.DictReader(io.StringIO(body.lstrip("\ufeff"))))


@pytest.fixture
def alice(departments):
    return make_operator("alice", departments[0])


def test_it_exports_an_operators_calls_with_proper_quoting(client, cdrs, alice):
    client.force_login(alice)
    response = client.get(URL)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="ccbridge-cdr-')
    body, rows = read(response)
    assert [r["caller_number"] for r in rows] == ["+5511987650001", "+5511987650002", "+5521987650003"]
    assert '"Silva, ""Zé"""' in body  # csv quoting of a comma and quotes
    first = rows[0]
    assert first["caller_name"] == 'Silva, "Zé"'
    assert (first["disposition"], first["duration_seconds"], first["talk_seconds"]) == (
        "answered",
        "125",
        "120",
    )
    assert first["department"] == "vendas"
    assert not body.startswith("\ufeff")


def test_an_operator_never_exports_another_departments_calls(client, cdrs, alice):
    client.force_login(alice)
    _, rows = read(client.get(URL))
    assert "+5511987650004" not in {r["caller_number"] for r in rows}
    # Asking for the other department by name is refused like an unknown one.
    response = client.get(URL, {"department": "suporte"})
    assert response.status_code == 400
    assert "Unknown department: suporte" in response.content.decode()


def test_a_superuser_exports_everything(client, cdrs, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    _, rows = read(client.get(URL))
    assert len(rows) == 4
    _, rows = read(client.get(URL, {"department": "suporte"}))
    assert [r["caller_number"] for r in rows] == ["+5511987650004"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"disposition": "answered"}, ["+5511987650001"]),
        ({"direction": "outbound"}, ["+5521987650003"]),
        ({"min_duration": "30"}, ["+5511987650001", "+5511987650002"]),
        ({"number": "+5521*"}, ["+5521987650003"]),
        ({"number": "*0002"}, ["+5511987650002"]),
        ({"number": "98765000"}, ["+5511987650001", "+5511987650002", "+5521987650003"]),
        ({"number": "(11) 98765-0001"}, ["+5511987650001"]),
    ],
)
def test_it_filters(client, cdrs, alice, params, expected):
    client.force_login(alice)
    _, rows = read(client.get(URL, params))
    assert [r["caller_number"] for r in rows] == expected


def test_it_filters_by_date_range(client, cdrs, alice):
    client.force_login(alice)
    t0 = cdrs["t0"]
    params = {
        "date_from": (t0 + timedelta(minutes=5)).isoformat(),
        "date_to": (t0 + timedelta(hours=1)).isoformat(),
    }
    _, rows = read(client.get(URL, params))
    assert [r["caller_number"] for r in rows] == ["+5511987650002"]
    # A bare date runs to the end of that day.
    day = timezone.localtime(cdrs["c"].started_at).date().isoformat()
    _, rows = read(client.get(URL, {"date_from": day, "date_to": day}))
    assert "+5521987650003" in [r["caller_number"] for r in rows]


def test_it_selects_columns_and_adds_a_bom(client, cdrs, alice):
    client.force_login(alice)
    body, rows = read(client.get(URL, {"columns": "caller_number,duration_seconds,hangup_cause", "bom": "1"}))
    assert body.startswith("\ufeffcaller_number,duration_seconds,q850_cause\r\n")
    assert rows[0] == {"caller_number": "+5511987650001", "duration_seconds": "125", "q850_cause": ""}


def test_it_masks_caller_digits_when_configured(client, cdrs, alice, settings):
    settings.CDR_EXPORT_MASK_DIGITS = 4
    client.force_login(alice)
    _, rows = read(client.get(URL, {"columns": "caller_number,caller_e164,dialed"}))
    assert rows[0] == {
        "caller_number": "+551198765xxxx",
        "caller_e164": "+551198765xxxx",
        "dialed": "sip:vendas@empresa.com",
    }


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"date_from": "yesterday"}, "date_from"),
        ({"date_from": "2026-01-02", "date_to": "2026-01-01"}, "__all__"),
        ({"direction": "sideways"}, "direction"),
        ({"disposition": "maybe"}, "disposition"),
        ({"min_duration": "-1"}, "min_duration"),
        ({"min_duration": "ten"}, "min_duration"),
        ({"number": "'; DROP TABLE calls_call; --"}, "number"),
        ({"columns": "caller_number,password"}, "columns"),
        ({"department": "../etc"}, "department"),
    ],
)
def test_a_bad_filter_is_a_clear_400(client, cdrs, alice, params, field):
    client.force_login(alice)
    response = client.get(URL, params)
    assert response.status_code == 400
    data = response.json()
    assert data["error"] == "invalid filter"
    assert field in data["fields"]
    assert data["fields"][field][0]["message"]


def test_it_needs_login_and_the_export_permission(client, cdrs, departments, django_user_model):
    assert client.get(URL).status_code == 302  # to the login page
    nobody = django_user_model.objects.create_user("nobody", password="x", is_staff=True)
    departments[0].operators.add(nobody)
    client.force_login(nobody)
    assert client.get(URL).status_code == 403


def test_the_admin_action_exports_the_filtered_selection(client, cdrs, alice):
    client.force_login(alice)
    changelist = reverse("admin:calls_call_changelist")
    ids = [cdrs["a"].pk, cdrs["b"].pk, cdrs["d"].pk]  # d belongs to another department
    response = client.post(
        changelist + "?disposition__exact=answered",
        {"action": "export_csv", "_selected_action": ids, "bom": "1"},
    )
    body, rows = read(response)
    assert body.startswith("\ufeff")
    assert [r["caller_number"] for r in rows] == ["+5511987650001"]
