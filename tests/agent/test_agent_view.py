"""Tests for agent.views.agent_app: which app the agent page configures, and what it tells the SDK."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from mappings.models import ConnectyCubeApp
from tests.conftest import make_mapping
from tests.fixtures.prereq import require

pytestmark = pytest.mark.django_db


def page_config(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="agent-config" type="application/json">') + len(
        '<script id="agent-config" type="application/json">'
    )
    return json.loads(html[start:html.index("</script>", start)])


@pytest.fixture
def sandbox_app():
    return ConnectyCubeApp.objects.create(
        name="Sandbox", app_id=1, auth_key="demo-auth-key",
        api_url="http://127.0.0.1:8000/cc-sandbox/api",
        chat_url="ws://127.0.0.1:8000/cc-sandbox/chat/", chat_domain="localhost",
    )


@pytest.fixture
def cloud_app():
    return ConnectyCubeApp.objects.create(name="Cloud", app_id=4242, auth_key="cloud-key")


def test_it_configures_the_app_of_the_first_mapping(client, departments, cloud_app, sandbox_app):
    make_mapping(departments[0], sandbox_app, "sip:vendas@empresa.com", display_name="Vendas",
                 cc_user_id=2001)
    make_mapping(departments[1], cloud_app, "sip:suporte@empresa.com")

    response = client.get(reverse("agent:agent"))

    assert response.status_code == 200
    config = page_config(response)
    assert config["appId"] == 1 and config["authKey"] == "demo-auth-key"
    assert config["apiUrl"] == "http://127.0.0.1:8000/cc-sandbox/api"
    assert config["chatUrl"] == "ws://127.0.0.1:8000/cc-sandbox/chat/"
    assert config["chatDomain"] == "localhost"
    # Sandbox peers meet on loopback: no STUN/TURN lookups.
    assert config["iceServers"] == [] and config["sandbox"] is True
    assert config["departments"] == {"2001": "Vendas"}
    assert config["answerTimeout"] == 60
    assert config["sdkUrl"] == "/static/vendor/connectycube/connectycube.min.js"


def test_it_never_sends_the_department_password(client, departments, sandbox_app):
    make_mapping(departments[0], sandbox_app, "sip:vendas@empresa.com", password="s3cret-pass")

    response = client.get(reverse("agent:agent"))

    assert b"s3cret-pass" not in response.content


def test_it_configures_the_app_chosen_by_pk(client, cloud_app, sandbox_app):
    response = client.get(reverse("agent:agent"), {"app": cloud_app.pk})

    config = page_config(response)
    assert config["appId"] == 4242
    assert config["apiUrl"] == "https://api.connectycube.com"
    assert config["chatUrl"] == "wss://chat.connectycube.com:5291"
    # The real cloud keeps the SDK's own STUN/TURN servers.
    assert config["iceServers"] is None and config["sandbox"] is False


def test_it_takes_ice_servers_from_the_settings(client, settings, sandbox_app):
    settings.AGENT_ICE_SERVERS = [{"urls": "stun:stun.empresa.com:3478"}]

    config = page_config(client.get(reverse("agent:agent")))

    assert config["iceServers"] == [{"urls": "stun:stun.empresa.com:3478"}]


def test_it_shortens_the_answer_timeout_on_request(client, sandbox_app):
    assert page_config(client.get(reverse("agent:agent"), {"answer_timeout": "4"}))[
        "answerTimeout"] == 4
    assert page_config(client.get(reverse("agent:agent"), {"answer_timeout": "-1"}))[
        "answerTimeout"] == 60


def test_it_answers_404_for_an_unknown_or_malformed_app(client, sandbox_app):
    assert client.get(reverse("agent:agent"), {"app": "999"}).status_code == 404
    assert client.get(reverse("agent:agent"), {"app": "x"}).status_code == 404


def test_it_answers_404_before_any_app_exists(client):
    response = client.get(reverse("agent:agent"))

    assert response.status_code == 404


def test_it_speaks_portuguese_when_asked(client, sandbox_app):
    response = client.get(reverse("agent:agent"), HTTP_ACCEPT_LANGUAGE="pt-BR")

    html = response.content.decode()
    assert '<html lang="pt-br">' in html
    assert ">Entrar</button>" in html
    assert '"calling": "{name} ligando..."' in html


def test_it_speaks_english_by_default(client, sandbox_app):
    html = client.get(reverse("agent:agent"), HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert ">Sign in</button>" in html
    assert '"calling": "{name} calling..."' in html


def test_it_serves_the_official_sdk_from_node_modules(client, settings):
    sdk = settings.CONNECTYCUBE_SDK_DIR / "connectycube.min.js"
    require(sdk.is_file(), f"{sdk} (npm ci; scripts/setup.sh runs it)")

    response = client.get("/static/vendor/connectycube/connectycube.min.js")

    assert response.status_code == 200
    assert b"ConnectyCube" in b"".join(response.streaming_content)
