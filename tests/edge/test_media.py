"""The edge's media legs turn the worker's replies into what the call machine acts on."""

from __future__ import annotations

import pytest

from edge.media import WorkerMediaLeg
from edge.ports import NotAcceptable
from media.control import NOT_ACCEPTABLE, MediaError


class Session:
    session_id = "s1"
    on_event = None

    def __init__(self, error: MediaError | None = None) -> None:
        self.error = error
        self.closed = False

    async def request(self, op: str, timeout: float | None = None, **args: object) -> dict:  # noqa: ASYNC109
        if self.error is not None:
            raise self.error
        return {"sdp": f"answer to {args['sdp']}"}

    async def close(self) -> None:
        self.closed = True
        raise ConnectionError("Redis is down")


async def test_it_answers_the_phone_with_the_workers_sdp():
    assert await WorkerMediaLeg(Session()).answer_phone("offer") == "answer to offer"


async def test_no_common_codec_is_not_acceptable_by_its_code():
    leg = WorkerMediaLeg(Session(MediaError("NoCommonCodec: none", NOT_ACCEPTABLE)))
    with pytest.raises(NotAcceptable):
        await leg.answer_phone("offer")


async def test_other_worker_failures_stay_media_errors():
    leg = WorkerMediaLeg(Session(MediaError("codec library crashed")))  # the word alone means nothing
    with pytest.raises(MediaError) as failed:
        await leg.answer_phone("offer")
    assert not isinstance(failed.value, NotAcceptable)


async def test_stats_and_close_never_raise():
    leg = WorkerMediaLeg(Session(MediaError("gone")))
    assert await leg.stats() is None
    await leg.close()
    assert leg.session.closed


async def test_ice_states_go_to_the_peer_and_the_rest_to_the_leg():
    session = Session()
    leg = WorkerMediaLeg(session)
    seen: list = []
    leg.peer.on_ice_state = lambda state: seen.append(("ice", state))
    leg.on_event = lambda name, data: seen.append((name, data))
    session.on_event("ice_state", {"state": "connected"})
    session.on_event("dtmf", {"digit": "5"})
    assert seen == [("ice", "connected"), ("dtmf", {"digit": "5"})]
