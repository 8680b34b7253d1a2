"""Fixtures for tests against the real Asterisk lab (marker ``asterisk``).

Locally a missing prerequisite skips with what is missing; with CI=true it
fails, so CI can never go green by skipping the lab.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from calls.ami import AmiClient
from tests.lab.asterisk import AsteriskLab, LabError, prerequisites
from tests.lab.eventlog import EventLog
from tests.lab.sipp import Sipp, free_tcp_port, free_udp_port


def skip_or_fail(reason: str) -> None:
    """Skip locally, fail in CI (CI=true)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: a missing prerequisite is a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def asterisk_lab() -> Iterator[AsteriskLab]:
    missing = prerequisites()
    if missing:
        skip_or_fail("Asterisk lab unavailable: " + "; ".join(missing))
    lab = AsteriskLab(
        sip_port=free_udp_port(), ami_port=free_tcp_port(), bridge_port=free_udp_port()
    )
    try:
        try:
            lab.start()
        except LabError as exc:
            pytest.fail(f"Asterisk lab failed to start: {exc}")
        yield lab
    finally:
        lab.stop()


@pytest.fixture
def sipp(asterisk_lab: AsteriskLab) -> Iterator[Sipp]:
    with Sipp(asterisk_lab.host, asterisk_lab.ports.sip, asterisk_lab.phone_password) as s:
        yield s


@pytest.fixture
def ami_events() -> EventLog:
    return EventLog()


@pytest.fixture
async def ami(asterisk_lab: AsteriskLab, ami_events: EventLog) -> AsyncIterator[AmiClient]:
    client = AmiClient(
        asterisk_lab.host, asterisk_lab.ports.ami, asterisk_lab.ami_username,
        asterisk_lab.ami_secret, on_event=ami_events, ping_interval=1.0, ping_timeout=1.0,
    )
    await client.start()
    try:
        await client.wait_connected(10)
        yield client
    finally:
        await client.stop()
