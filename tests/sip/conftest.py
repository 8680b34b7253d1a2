"""Fixtures for the sip conformance tests: short timers, an endpoint, raw peers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sip import SipEndpoint, Timers
from tests.sip.peer import Peer

# 64*T1 = 1.28 s: every "gives up" path finishes fast.
FAST = Timers(t1=0.02, t2=0.08, t4=0.1, d=0.3)


@pytest.fixture
def timers() -> Timers:
    return FAST


@pytest.fixture
async def endpoint(timers: Timers) -> AsyncIterator[SipEndpoint]:
    ep = SipEndpoint("127.0.0.1", 0, timers=timers)
    await ep.start()
    try:
        yield ep
    finally:
        await ep.close()


@pytest.fixture
async def peer(endpoint: SipEndpoint) -> AsyncIterator[Peer]:
    p = await Peer(("127.0.0.1", endpoint.port)).start()
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
async def peer2(endpoint: SipEndpoint) -> AsyncIterator[Peer]:
    p = await Peer(("127.0.0.1", endpoint.port)).start()
    try:
        yield p
    finally:
        p.close()
