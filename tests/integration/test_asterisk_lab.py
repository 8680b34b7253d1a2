"""The Asterisk lab itself: configuration, lifecycle and the SIPp scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lab.asterisk import CONF_DIR, AsteriskLab, LabError, apt_mirror, render
from tests.lab.sipp import Sipp


def test_it_reads_the_mirror_from_deb822_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\n# comment\nURIs: http://mirror.example/debian/\nSuites: bookworm\n"
    )
    assert apt_mirror(tmp_path) == "http://mirror.example/debian"


def test_it_reads_the_mirror_from_a_classic_sources_list(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64] http://classic.example/debian bookworm main\n"
    )
    assert apt_mirror(tmp_path) == "http://classic.example/debian"


def test_it_fails_clearly_without_any_mirror(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="no Debian mirror"):
        apt_mirror(tmp_path)


def test_it_renders_tokens_and_leaves_dialplan_variables_alone() -> None:
    text = render("bind=127.0.0.1:@@SIP_PORT@@\nDial(PJSIP/${EXTEN},20)", {"SIP_PORT": 5062})
    assert text == "bind=127.0.0.1:5062\nDial(PJSIP/${EXTEN},20)"
    with pytest.raises(LabError, match="@@NOPE@@"):
        render("@@NOPE@@", {})


def test_the_templates_use_only_known_tokens() -> None:
    lab = AsteriskLab(root=Path("/nonexistent"))
    assert "secret" not in repr(lab) and lab.ami_secret not in repr(lab)
    values = dict.fromkeys(
        ["SIP_PORT", "AMI_PORT", "BRIDGE_PORT", "RTP_START", "RTP_END", "AMI_SECRET",
         "PHONE_PASSWORD"], "x")
    for template in CONF_DIR.glob("*.conf"):
        assert "@@" not in render(template.read_text(), values)


@pytest.mark.asterisk
def test_it_runs_asterisk_22_with_our_endpoints(asterisk_lab: AsteriskLab) -> None:
    assert "Asterisk 22" in asterisk_lab.rx("core show version")
    endpoints = asterisk_lab.rx("pjsip show endpoints")
    for name in ("1001", "1002", "1003", "1004", "vendas", "ccbridge"):
        assert f"Endpoint:  {name} " in endpoints
    assert f"127.0.0.1:{asterisk_lab.ports.bridge}" in asterisk_lab.rx("pjsip show identifies")


@pytest.mark.asterisk
def test_it_stops_cleanly_and_starts_again(asterisk_lab: AsteriskLab) -> None:
    asterisk_lab.stop()
    asterisk_lab.stop()  # idempotent
    root = str(asterisk_lab.root.resolve())
    assert root not in Path("/proc/mounts").read_text()
    assert not asterisk_lab.running
    asterisk_lab.start()
    assert asterisk_lab.running


@pytest.mark.asterisk
def test_a_call_to_a_busy_phone_is_rejected(asterisk_lab: AsteriskLab, sipp: Sipp) -> None:
    busy = sipp.answer_as("1002", scenario="uas_busy")
    caller = sipp.call("1001", "1002", hold_ms=500).wait(15)
    # uac.xml expects an answer, so the 486 is an unexpected message there.
    assert not caller.ok
    assert "486" in caller.errors or "486" in caller.stderr
    assert busy.wait(10).ok


@pytest.mark.asterisk
def test_a_caller_can_cancel_a_ringing_call(asterisk_lab: AsteriskLab, sipp: Sipp) -> None:
    ringing = sipp.answer_as("1003", scenario="uas_noanswer")
    caller = sipp.call("1001", "1003", hold_ms=500, scenario="uac_cancel").wait(15)
    assert caller.ok, caller.describe()
    result = ringing.wait(10)
    assert result.ok, result.describe()
