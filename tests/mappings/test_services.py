"""find_by_sip_uri and validate_credentials (against a real local HTTP server)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from mappings.models import SipMapping
from mappings.services import find_by_sip_uri, validate_credentials
from tests.conftest import make_mapping, make_operator


@pytest.fixture
def mappings(departments, cc_app):
    vendas, suporte = departments
    return (
        make_mapping(vendas, cc_app, "sip:vendas@empresa.com"),
        make_mapping(suporte, cc_app, "sip:suporte@empresa.com", enabled=False),
        make_mapping(suporte, cc_app, "sip:suporte@filial.com"),
    )


@pytest.mark.parametrize(
    "value",
    [
        "sip:vendas@empresa.com",
        "<sip:Vendas@EMPRESA.com>",
        '"Cliente" <sip:vendas@empresa.com>;tag=abc',
        "sip:vendas@127.0.0.1:5070",  # Asterisk's Request-URI to the trunk
        "PJSIP/vendas-00000001",
        "vendas",
    ],
)
def test_it_finds_a_mapping_from_every_form(mappings, value):
    assert find_by_sip_uri(value) == mappings[0]


def test_it_returns_disabled_mappings_for_the_caller_to_refuse(mappings):
    found = find_by_sip_uri("sip:suporte@empresa.com")
    assert found == mappings[1]
    assert not found.enabled


def test_an_ambiguous_user_part_finds_nothing(mappings):
    # suporte@empresa.com and suporte@filial.com: the host decides, and a channel name has none.
    assert find_by_sip_uri("PJSIP/suporte-00000001") is None
    assert find_by_sip_uri("sip:suporte@filial.com") == mappings[2]


@pytest.mark.parametrize(
    "value", ["sip:nobody@empresa.com", "PJSIP/nobody-00000001", "", "<sip:broken", "x@y"]
)
def test_unknown_or_malformed_input_finds_nothing(mappings, value):
    assert find_by_sip_uri(value) is None


class FakeConnectyCube(BaseHTTPRequestHandler):
    """A ConnectyCube REST endpoint that knows one user: vendas / right-password."""

    requests: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(("POST", self.path, body))
        user = body.get("user", {})
        if body.get("application_id") == 77 and user == {"login": "vendas", "password": "right-password"}:
            self._reply(
                201,
                {
                    "session": {
                        "id": 1,
                        "user_id": 4242,
                        "application_id": 77,
                        "token": "t0k3n",
                        "user": {"id": 4242, "login": "vendas"},
                    }
                },
            )
        else:
            self._reply(401, {"errors": ["Unauthorized"]})

    def do_DELETE(self):
        self.requests.append(("DELETE", self.path, self.headers.get("CB-Token")))
        self._reply(200, {})

    def _reply(self, status, data):
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def cc_server(cc_app):
    FakeConnectyCube.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeConnectyCube)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    cc_app.api_url = f"http://127.0.0.1:{server.server_port}"
    cc_app.save()
    yield FakeConnectyCube
    server.shutdown()
    server.server_close()


def test_validate_credentials_logs_in_and_out(departments, cc_app, cc_server):
    mapping = make_mapping(
        departments[0], cc_app, "sip:vendas@empresa.com", password="right-password", cc_login="vendas"
    )
    result = validate_credentials(mapping)
    assert result.ok, result.message
    assert result.user_id == 4242
    assert cc_server.requests[0][:2] == ("POST", "/session.json")
    assert cc_server.requests[1] == ("DELETE", "/session.json", "t0k3n")


def test_validate_credentials_reports_a_refusal(departments, cc_app, cc_server):
    mapping = make_mapping(
        departments[0], cc_app, "sip:vendas@empresa.com", password="wrong", cc_login="vendas"
    )
    result = validate_credentials(mapping)
    assert not result.ok
    assert "refused the login for app 77" in result.message
    assert "wrong" not in result.message


def test_validate_credentials_reports_an_unreachable_server(departments, cc_app):
    cc_app.api_url = "http://127.0.0.1:9"  # discard port: nothing listens
    cc_app.save()
    mapping = make_mapping(departments[0], cc_app, "sip:vendas@empresa.com")
    result = validate_credentials(mapping)
    assert not result.ok
    assert result.message


def test_the_admin_action_tests_credentials(client, departments, cc_app, cc_server):
    good = make_mapping(
        departments[0], cc_app, "sip:vendas@empresa.com", password="right-password", cc_login="vendas"
    )
    bad = make_mapping(departments[0], cc_app, "sip:vendas2@empresa.com", password="nope", cc_login="vendas")
    client.force_login(make_operator("alice", departments[0]))
    response = client.post(
        reverse("admin:mappings_sipmapping_changelist"),
        {"action": "test_credentials", "_selected_action": [good.pk, bad.pk]},
        follow=True,
    )
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("sip:vendas@empresa.com: Logged in as ConnectyCube user 4242" in t for t in texts), texts
    assert any("sip:vendas2@empresa.com: ConnectyCube refused the login" in t for t in texts), texts
    # The user id was unknown; the check fills it in.
    assert SipMapping.objects.get(pk=good.pk).cc_user_id == 4242
