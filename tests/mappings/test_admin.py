"""The admin through real requests: department isolation and the write-only password."""

import re

import pytest
from django.urls import reverse

from calls.models import Call, CallEvent
from mappings.models import SipMapping
from tests.conftest import make_mapping, make_operator


@pytest.fixture
def world(departments, cc_app, django_user_model):
    vendas, suporte = departments
    alice = make_operator("alice", vendas)
    bob = make_operator("bob", suporte)
    root = django_user_model.objects.create_superuser("root", password="pw-root")
    m_vendas = make_mapping(vendas, cc_app, "sip:vendas@empresa.com")
    m_suporte = make_mapping(suporte, cc_app, "sip:suporte@empresa.com")
    c_vendas = Call.objects.create(department=vendas, caller_number="+5511900000001", dialed="vendas")
    c_suporte = Call.objects.create(department=suporte, caller_number="+5511900000002", dialed="suporte")
    CallEvent.record("ringing", call=c_vendas)
    CallEvent.record("ringing", call=c_suporte)
    return {
        "alice": alice,
        "bob": bob,
        "root": root,
        "vendas": vendas,
        "suporte": suporte,
        "m_vendas": m_vendas,
        "m_suporte": m_suporte,
        "c_vendas": c_vendas,
        "c_suporte": c_suporte,
    }


def login(client, user):
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("url_name", "own", "other"),
    [
        ("admin:mappings_sipmapping_changelist", "sip:vendas@empresa.com", "sip:suporte@empresa.com"),
        ("admin:calls_call_changelist", "+5511900000001", "+5511900000002"),
    ],
)
def test_an_operator_lists_only_their_department(client, world, url_name, own, other):
    page = login(client, world["alice"]).get(reverse(url_name)).content.decode()
    assert own in page
    assert other not in page


def test_an_operator_lists_only_their_departments_events(client, world):
    response = login(client, world["alice"]).get(reverse("admin:calls_callevent_changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1
    assert response.context["cl"].result_list[0].call == world["c_vendas"]


@pytest.mark.parametrize(
    ("url_name", "key"),
    [
        ("admin:mappings_sipmapping_change", "m_suporte"),
        ("admin:calls_call_change", "c_suporte"),
        ("admin:mappings_department_change", "suporte"),
    ],
)
def test_an_operator_cannot_open_another_departments_rows(client, world, url_name, key):
    response = login(client, world["alice"]).get(reverse(url_name, args=[world[key].pk]))
    # The admin answers a row outside the queryset as "doesn't exist" and redirects.
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")


def test_an_operator_cannot_edit_another_departments_mapping(client, world):
    target = world["m_suporte"]
    url = reverse("admin:mappings_sipmapping_change", args=[target.pk])
    login(client, world["alice"]).post(
        url, mapping_form(world, department=world["vendas"].pk, display_name="Hijacked")
    )
    target.refresh_from_db()
    assert target.display_name == "Suporte"
    assert target.department == world["suporte"]


def test_an_operator_cannot_move_a_mapping_into_another_department(client, world):
    url = reverse("admin:mappings_sipmapping_add")
    response = login(client, world["alice"]).post(
        url, mapping_form(world, sip_uri="sip:novo@empresa.com", department=world["suporte"].pk)
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not SipMapping.objects.filter(sip_uri="sip:novo@empresa.com").exists()


def test_a_superuser_sees_every_department(client, world):
    page = login(client, world["root"]).get(reverse("admin:mappings_sipmapping_changelist")).content.decode()
    assert "sip:vendas@empresa.com" in page
    assert "sip:suporte@empresa.com" in page


def test_events_cannot_be_edited_or_deleted_through_the_admin(client, world):
    event = world["c_vendas"].events.get()
    c = login(client, world["root"])
    assert c.get(reverse("admin:calls_callevent_delete", args=[event.pk])).status_code == 403
    page = c.get(reverse("admin:calls_callevent_change", args=[event.pk])).content.decode()
    assert 'name="kind"' not in page  # rendered read-only, no input
    assert c.get(reverse("admin:calls_callevent_add")).status_code == 403


def mapping_form(world, **overrides):
    data = {
        "sip_uri": "sip:vendas@empresa.com",
        "department": world["vendas"].pk,
        "display_name": "Vendas",
        "enabled": "on",
        "app": world["m_vendas"].app_id,
        "cc_login": "vendas",
        "cc_password": "",
        "cc_user_id": "",
        "agents": "[1001, 1002]",
        "ring_strategy": "parallel",
        "ring_timeout": "30",
    }
    data.update(overrides)
    return data


def test_an_operator_adds_a_mapping_with_a_normalised_uri(client, world):
    url = reverse("admin:mappings_sipmapping_add")
    response = login(client, world["alice"]).post(
        url, mapping_form(world, sip_uri="<sip:Compras@EMPRESA.com>", cc_password="pw-compras")
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    created = SipMapping.objects.get(sip_uri="sip:compras@empresa.com")
    assert created.cc_password.reveal() == "pw-compras"
    assert created.agents == [1001, 1002]


def test_the_same_uri_in_another_spelling_is_a_duplicate(client, world):
    url = reverse("admin:mappings_sipmapping_add")
    response = login(client, world["alice"]).post(
        url, mapping_form(world, sip_uri="<sip:VENDAS@Empresa.com>", cc_password="x")
    )
    assert response.status_code == 200
    assert "already exists" in response.content.decode()


def test_a_new_mapping_needs_a_password(client, world):
    response = login(client, world["alice"]).post(
        reverse("admin:mappings_sipmapping_add"), mapping_form(world, sip_uri="sip:x@empresa.com")
    )
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()


@pytest.mark.parametrize("agents", ["1001", '["a"]', "[0]", "[1001, 1001]", "not json"])
def test_bad_agent_lists_are_rejected(client, world, agents):
    response = login(client, world["alice"]).post(
        reverse("admin:mappings_sipmapping_add"),
        mapping_form(world, sip_uri="sip:y@empresa.com", cc_password="x", agents=agents),
    )
    assert response.status_code == 200
    assert not SipMapping.objects.filter(sip_uri="sip:y@empresa.com").exists()


def test_the_password_field_stays_blank_and_keeps_the_stored_value(client, world):
    mapping = world["m_vendas"]
    url = reverse("admin:mappings_sipmapping_change", args=[mapping.pk])
    c = login(client, world["alice"])
    page = c.get(url).content.decode()
    field = re.search(r'<input[^>]*name="cc_password"[^>]*>', page).group(0)
    assert "value=" not in field
    assert "cc-pass-1" not in page
    assert mapping.cc_password.token not in page
    assert "Stored. Leave blank to keep it." in page

    # Saving with the field left blank keeps the password.
    response = c.post(url, mapping_form(world, display_name="Vendas BR"))
    assert response.status_code == 302
    mapping.refresh_from_db()
    assert mapping.display_name == "Vendas BR"
    assert mapping.cc_password.reveal() == "cc-pass-1"

    # Typing a new one replaces it; the page after reload is blank again.
    c.post(url, mapping_form(world, cc_password="new-pass-2"))
    mapping.refresh_from_db()
    assert mapping.cc_password.reveal() == "new-pass-2"
    assert "new-pass-2" not in c.get(url).content.decode()


def test_an_optional_secret_can_be_cleared(client, world, cc_app):
    cc_app.auth_secret = "legacy"
    cc_app.save()
    url = reverse("admin:mappings_connectycubeapp_change", args=[cc_app.pk])
    c = login(client, world["root"])
    assert 'name="auth_secret__clear"' in c.get(url).content.decode()
    data = {
        "name": cc_app.name,
        "app_id": cc_app.app_id,
        "auth_key": cc_app.auth_key,
        "auth_secret": "",
        "api_url": cc_app.api_url,
        "chat_url": cc_app.chat_url,
        "chat_domain": cc_app.chat_domain,
    }
    assert c.post(url, data).status_code == 302
    cc_app.refresh_from_db()
    assert cc_app.auth_secret.reveal() == "legacy"
    assert c.post(url, {**data, "auth_secret__clear": "on"}).status_code == 302
    cc_app.refresh_from_db()
    assert cc_app.auth_secret is None
