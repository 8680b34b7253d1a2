"""Tests for agent.checks: the warning when the ConnectyCube JS SDK is not installed."""

from agent.checks import check_connectycube_sdk


def test_it_warns_when_the_sdk_is_missing(settings, tmp_path):
    settings.CONNECTYCUBE_SDK_DIR = tmp_path

    (warning,) = check_connectycube_sdk(None)

    assert warning.id == "agent.W001"
    assert "npm ci" in warning.hint


def test_it_is_quiet_when_the_sdk_is_installed(settings, tmp_path):
    (tmp_path / "connectycube.min.js").write_text("/* sdk */")
    settings.CONNECTYCUBE_SDK_DIR = tmp_path

    assert check_connectycube_sdk(None) == []
