"""Sandbox users keep only a password hash; the admin never shows it or the session tokens."""

from __future__ import annotations

import pytest

from sandbox.admin import SandboxUserForm
from sandbox.models import SandboxSession, SandboxUser

pytestmark = pytest.mark.django_db


def test_it_stores_the_password_hashed():
    user = SandboxUser(id=1001, login="alice")
    user.set_password("alicepass")
    user.save()
    assert "alicepass" not in user.password
    assert user.check_password("alicepass") and not user.check_password("nope")
    assert "password" not in user.as_json()


def test_the_admin_form_sets_and_keeps_passwords():
    form = SandboxUserForm(data={"id": 7, "login": "u7", "new_password": "s3cret"})
    assert form.is_valid(), form.errors
    user = form.save()
    assert user.check_password("s3cret")
    form = SandboxUserForm(data={"id": 7, "login": "u7b", "new_password": ""}, instance=user)
    assert form.is_valid(), form.errors
    assert form.save().check_password("s3cret")
    assert not SandboxUserForm(data={"id": 8, "login": "u8"}).is_valid()


def test_sessions_serialise_like_the_api(django_user_model):
    from django.utils import timezone

    session = SandboxSession.objects.create(app_id=1, expires=timezone.now())
    data = session.as_json()
    assert data["user_id"] == 0 and len(data["token"]) == 40 and "user" not in data


def test_the_admin_hides_tokens(admin_client):
    from django.utils import timezone

    session = SandboxSession.objects.create(app_id=1, expires=timezone.now())
    page = admin_client.get(f"/admin/sandbox/sandboxsession/{session.pk}/change/")
    assert page.status_code == 200
    assert session.token not in page.content.decode()
