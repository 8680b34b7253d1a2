"""The live board's consumer and actions, through a real WebSocket layer (Redis) and real requests."""

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from calls.board import publish_call
from calls.consumers import BoardConsumer
from calls.models import Call, CallEvent, CallState, Pbx
from tests.conftest import make_operator, require

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def redis_layer(settings):
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL).ping()
    except redis.RedisError:
        require(False, f"Redis at {settings.REDIS_URL}")


@pytest.fixture
def world(departments, django_user_model):
    vendas, suporte = departments
    pbx = Pbx.objects.create(name="lab-test", username="u", secret="s")
    return {
        "alice": make_operator("alice", vendas),
        "bob": make_operator("bob", suporte),
        "root": django_user_model.objects.create_superuser("root", password="x"),
        "vendas": vendas,
        "suporte": suporte,
        "c_vendas": Call.objects.create(
            pbx=pbx,
            department=vendas,
            caller_number="+5511900000001",
            sip_channel="PJSIP/1001-00000001",
            state=CallState.UP,
        ),
        "c_suporte": Call.objects.create(
            pbx=pbx, department=suporte, caller_number="+5511900000002", sip_channel="PJSIP/1002-00000002"
        ),
        "pbx": pbx,
    }


async def connect(user):
    comm = WebsocketCommunicator(BoardConsumer.as_asgi(), "/ws/board/")
    comm.scope["user"] = user
    connected, _ = await comm.connect()
    return comm, connected


async def test_an_operator_gets_a_snapshot_of_their_departments_calls_only(world):
    comm, connected = await connect(world["alice"])
    assert connected
    message = await comm.receive_json_from(timeout=5)
    assert message["type"] == "snapshot"
    assert [c["caller_number"] for c in message["calls"]] == ["+5511900000001"]
    await comm.disconnect()


async def test_live_updates_reach_only_the_departments_operators(world):
    alice, _ = await connect(world["alice"])
    bob, _ = await connect(world["bob"])
    root, _ = await connect(world["root"])
    for comm in (alice, bob, root):
        await comm.receive_json_from(timeout=5)  # the snapshots

    await sync_to_async(publish_call)(world["c_suporte"], "update")
    got = await bob.receive_json_from(timeout=5)
    assert (got["type"], got["call"]["caller_number"]) == ("call", "+5511900000002")
    got = await root.receive_json_from(timeout=5)
    assert got["call"]["caller_number"] == "+5511900000002"
    # Alice (Vendas) hears nothing of Suporte's call.
    assert await alice.receive_nothing(timeout=0.5)
    for comm in (alice, bob, root):
        await comm.disconnect()


async def test_anonymous_and_non_staff_users_are_refused(world, django_user_model):
    from django.contrib.auth.models import AnonymousUser

    _, connected = await connect(AnonymousUser())
    assert not connected
    plain = await sync_to_async(django_user_model.objects.create_user)("plain", password="x")
    _, connected = await connect(plain)
    assert not connected


async def test_a_board_can_ask_for_a_fresh_snapshot(world):
    comm, _ = await connect(world["root"])
    await comm.receive_json_from(timeout=5)
    await comm.send_json_to({"type": "resync"})
    message = await comm.receive_json_from(timeout=5)
    assert message["type"] == "snapshot" and len(message["calls"]) == 2
    await comm.disconnect()


def post_action(client, action, body, csrf=True):
    return client.post(reverse("calls:call_action", args=[action]), json.dumps(body), content_type="application/json")


def test_the_page_shows_buttons_only_for_granted_permissions(world):
    client = Client()
    client.force_login(world["alice"])  # Operators: hang up and transfer, no bridge, no originate
    page = client.get(reverse("calls:board")).content.decode()
    assert "hangup: true" in page and "transfer: true" in page and "bridge: false" in page
    assert 'id="originate"' not in page
    assert "+5511900000001" in page and "+5511900000002" not in page


def test_the_server_refuses_an_action_without_permission_and_audits_nothing(world):
    client = Client()
    client.force_login(world["alice"])
    response = post_action(client, "bridge", {"call": world["c_vendas"].pk, "other": world["c_vendas"].pk})
    assert response.status_code == 403
    assert not CallEvent.objects.filter(kind__startswith="action.").exists()


def test_an_operator_cannot_act_on_another_departments_call(world):
    client = Client()
    client.force_login(world["alice"])
    response = post_action(client, "hangup", {"call": world["c_suporte"].pk})
    assert response.status_code == 404


def test_actions_need_a_csrf_token(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["alice"])
    response = post_action(client, "hangup", {"call": world["c_vendas"].pk})
    assert response.status_code == 403
    assert "CSRF" in response.content.decode()


def test_an_action_with_no_listener_fails_clearly_and_is_audited(world, settings):
    client = Client()
    client.force_login(world["alice"])
    # No runami for this PBX: the request times out with a message that says so.
    settings.AMI_ACTION_TIMEOUT = 1.0
    response = post_action(client, "hangup", {"call": world["c_vendas"].pk})
    assert response.status_code == 502
    assert "is runami running?" in response.json()["error"]
    event = CallEvent.objects.get(kind="action.hangup")
    assert event.actor == world["alice"] and event.call == world["c_vendas"]
    assert event.payload["ok"] is False


@pytest.mark.parametrize("body", [{"call": "x"}, {}, {"call": 10**12}])
def test_bad_action_input_is_a_clean_error(world, body):
    client = Client()
    client.force_login(world["alice"])
    assert post_action(client, "hangup", body).status_code == 404
    response = post_action(client, "transfer", {"call": world["c_vendas"].pk, "exten": "1002; rm -rf"})
    assert response.status_code == 400


def test_originate_needs_its_permission(world):
    client = Client()
    client.force_login(world["alice"])
    assert post_action(client, "originate", {"extension": "1001", "number": "1002"}).status_code == 403
    world["alice"].user_permissions.add(Permission.objects.get(codename="originate_call"))
    client.force_login(world["alice"])
    response = post_action(client, "originate", {"extension": "1001", "number": "not a number!"})
    assert response.status_code == 400
