import io

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from mappings.models import SipMapping
from mappings.services import find_by_sip_uri


def test_it_seeds_a_working_demo_and_is_idempotent(db):
    out = io.StringIO()
    call_command("seed_demo", "--base-url", "http://127.0.0.1:8123", stdout=out)
    call_command("seed_demo", "--base-url", "http://127.0.0.1:8123", stdout=out)
    assert "admin login:    admin / ccbridge-demo" in out.getvalue()
    mapping = find_by_sip_uri("sip:vendas@empresa.com")
    assert mapping is not None and mapping.enabled
    assert SipMapping.objects.count() == 1
    assert mapping.cc_password.reveal() == "vendas-demo"
    assert mapping.app.api_url == "http://127.0.0.1:8123/cc-sandbox/api"
    assert mapping.app.chat_url == "ws://127.0.0.1:8123/cc-sandbox/chat/"
    assert mapping.agents == [2002, 2003]
    assert authenticate(username="admin", password="ccbridge-demo").is_superuser
    operator = authenticate(username="operador", password="ccbridge-demo")
    assert list(operator.departments.all()) == [mapping.department]


def test_it_refuses_to_run_in_production(db, settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="refuses to run in production"):
        call_command("seed_demo", stdout=io.StringIO())
