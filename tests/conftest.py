"""Shared fixtures: test keys, users in departments, and a CI guard against silent skips."""

import pytest
from cryptography.fernet import Fernet

# Fixtures shared by the integration tiers: the web role as a process, and Chromium.
from tests.fixtures.browser import launch_agent  # noqa: F401
from tests.fixtures.lab import ami, ami_events, asterisk_lab, sipp  # noqa: F401
from tests.fixtures.liveserver import web_role  # noqa: F401
from tests.fixtures.prereq import IN_CI, require  # noqa: F401  (re-exported for the tests)

# Tests never use the development key derived from SECRET_KEY: they set their own.
TEST_KEYS = [Fernet.generate_key().decode(), Fernet.generate_key().decode()]


@pytest.fixture(autouse=True)
def _encryption_keys(request):
    """Give every Django test its own Fernet key; leave Django-free tests alone."""
    if not {"db", "transactional_db", "settings"} & set(request.fixturenames):
        yield
        return
    settings = request.getfixturevalue("settings")
    settings.FIELD_ENCRYPTION_KEYS = [TEST_KEYS[0]]
    # Password hashing is not under test here; the real hasher costs ~0.3 s per user.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    yield


@pytest.fixture
def departments(db):
    from mappings.models import Department

    return (
        Department.objects.create(name="Vendas", slug="vendas"),
        Department.objects.create(name="Suporte", slug="suporte"),
    )


@pytest.fixture
def cc_app(db):
    from mappings.models import ConnectyCubeApp

    return ConnectyCubeApp.objects.create(name="Test app", app_id=77, auth_key="test-key")


def make_operator(username: str, *departments):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from mappings.groups import OPERATOR_GROUP, ensure_operator_group

    ensure_operator_group()
    user = get_user_model().objects.create_user(username, password="pw-" + username, is_staff=True)
    user.groups.add(Group.objects.get(name=OPERATOR_GROUP))
    for department in departments:
        department.operators.add(user)
    return user


def make_mapping(department, app, uri: str, password: str = "cc-pass-1", **extra):
    from mappings.models import SipMapping

    mapping = SipMapping(
        sip_uri=uri,
        department=department,
        app=app,
        cc_login=extra.pop("cc_login", "login-" + department.slug),
        display_name=extra.pop("display_name", department.name),
        agents=extra.pop("agents", [1001]),
        **extra,
    )
    mapping.cc_password = password
    mapping.save()
    return mapping
