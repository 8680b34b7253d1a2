"""Settings: the production mode refuses unsafe defaults, with a message naming each."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_settings(**env):
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "SECRET_KEY",
            "FIELD_ENCRYPTION_KEYS",
            "CONNECTYCUBE_SANDBOX",
            "ALLOWED_HOSTS",
            "BRIDGE_ENV",
            "DATABASE_URL",
        )
    }
    clean.update(env, BRIDGE_ENV_FILE="/nonexistent", DJANGO_SETTINGS_MODULE="bridgeproject.settings")
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)",
        ],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_development_starts_with_defaults():
    result = load_settings()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_production_refuses_every_default_and_names_it():
    result = load_settings(BRIDGE_ENV="production")
    assert result.returncode != 0
    assert "Refusing to start in production" in result.stderr
    for setting in ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "ALLOWED_HOSTS"):
        assert setting in result.stderr


def test_production_refuses_the_sandbox():
    result = load_settings(
        BRIDGE_ENV="production",
        SECRET_KEY="x" * 50,
        ALLOWED_HOSTS="bridge.example.com",
        FIELD_ENCRYPTION_KEYS="4r8hQm9bW3kZ2nV7yP1sT6uX0cE5fJ8aL3dG9hK2mN4=",
        CONNECTYCUBE_SANDBOX="true",
    )
    assert result.returncode != 0
    assert "CONNECTYCUBE_SANDBOX must be off in production" in result.stderr


def test_production_starts_when_configured():
    result = load_settings(
        BRIDGE_ENV="production",
        SECRET_KEY="x" * 50,
        ALLOWED_HOSTS="bridge.example.com",
        FIELD_ENCRYPTION_KEYS="4r8hQm9bW3kZ2nV7yP1sT6uX0cE5fJ8aL3dG9hK2mN4=",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_an_unknown_mode_is_refused():
    result = load_settings(BRIDGE_ENV="staging")
    assert result.returncode != 0
    assert "BRIDGE_ENV must be" in result.stderr
