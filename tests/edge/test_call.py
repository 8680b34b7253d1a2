"""The bridged call's state machine over queue-backed fakes: no Asterisk, Redis, database or app."""

from __future__ import annotations

import asyncio
import logging
import typing

import pytest

from edge import events as ev
from edge.call import BridgedCall, BridgeState
from edge.endings import EndReason, cancel_reason
from edge.ports import Direction, RingStrategy, Route
from tests.edge.fakes import PHONE_OFFER, FakeAccounts, FakeInvite, FakeMedia, FakeRecords, Request, answer_sdp

VENDAS = Route(key=1, sip_uri="sip:vendas@empresa.com", display_name="Vendas", enabled=True, agents=(2002, 2003))


class Harness:
    def __init__(
        self,
        route: Route | None = VENDAS,
        *,
        invite: FakeInvite | None = None,
        accounts: FakeAccounts | None = None,
        media: FakeMedia | None = None,
        ice_timeout: float = 5.0,
    ) -> None:
        self.invite = invite or FakeInvite()
        self.records = FakeRecords(route)
        self.accounts = accounts or FakeAccounts()
        self.account = self.accounts.account
        self.media = media or FakeMedia()
        self.call = BridgedCall(
            self.invite, records=self.records, accounts=self.accounts, media=self.media, ice_timeout=ice_timeout
        )
        self.task = asyncio.ensure_future(self.call.run())

    async def ringing(self, n: int = 1) -> list:
        return [await asyncio.wait_for(self.account.calls.get(), 2) for _ in range(n)]

    async def answered(self) -> None:
        await asyncio.wait_for(self.invite.answered.wait(), 2)

    async def done(self):
        await asyncio.wait_for(self.task, 3)
        assert self.records.flushed
        (finish,) = self.records.finished  # the CDR is ended exactly once
        return finish


async def test_it_rings_every_agent_at_once_and_the_first_accept_wins():
    h = Harness()
    first, second = await h.ringing(2)
    assert h.invite.provisional == [180]
    assert first.user_info["callerName"] == "Vendas" and first.user_info["callerNumber"] == "5511999990000"
    assert h.records.ringing_agents == [[2002, 2003]]
    second.accept()
    await h.answered()
    # The loser is told, and its media session released.
    assert first.hangups == [{"reason": "answered elsewhere"}]
    assert h.media.legs[0].closed and not h.media.legs[1].closed
    # The phone gets the winner's session's SDP.
    assert h.invite.dialog.local_sdp == answer_sdp(h.media.legs[1].port)
    assert h.records.answered == (2003, "session-2003")
    assert h.call.state is BridgeState.TALKING
    h.invite.dialog.remote_bye()
    finish = await h.done()
    assert finish.reason is EndReason.PHONE_HUNG_UP and finish.answered
    assert finish.stats["rtp"]["codec"] == "PCMU"
    assert second.hangups == [{"reason": "bye"}]
    assert h.invite.dialog.byes == 0  # the phone's BYE ended the dialog: none of ours
    assert all(leg.closed for leg in h.media.legs)
    assert h.records.kinds()[-3:] == ["sip.200", "sip.bye", "call.end"]


async def test_it_rings_agents_in_turn_when_sequential():
    route = Route(**{**VENDAS.__dict__, "ring_strategy": RingStrategy.SEQUENTIAL, "ring_timeout": 0.05})
    h = Harness(route)
    (first,) = await h.ringing()
    assert first.agent == 2002
    # The first agent does not answer within the ring timeout: the second rings.
    (second,) = await h.ringing()
    assert second.agent == 2003
    assert first.hangups == [{"reason": "not answered"}]
    assert h.records.ringing_agents == [[2002], [2003]]
    second.accept()
    await h.answered()
    assert h.records.answered == (2003, "session-2003")
    second.remote_hangup()
    finish = await h.done()
    assert finish.reason is EndReason.AGENT_HUNG_UP and finish.answered
    assert h.invite.dialog.byes == 1
    assert "ring.timeout" in h.records.kinds()


async def test_sequential_ringing_goes_on_after_a_rejection_and_reports_busy():
    route = Route(**{**VENDAS.__dict__, "ring_strategy": RingStrategy.SEQUENTIAL, "ring_timeout": 0.05})
    h = Harness(route)
    (first,) = await h.ringing()
    first.reject(busy="true")
    (second,) = await h.ringing()
    assert second.agent == 2003
    finish = await h.done()  # the second one times out
    assert finish.reason is EndReason.BUSY
    assert h.invite.rejected == 486


async def test_a_caller_cancel_while_ringing_stops_every_agent():
    h = Harness()
    first, second = await h.ringing(2)
    h.invite.cancel('Q.850;cause=16')
    finish = await h.done()
    assert finish.reason is EndReason.CANCELLED and not finish.answered
    assert first.hangups == second.hangups == [{"reason": "caller hung up"}]
    assert h.invite.rejected is None  # the stack answered 487 to the CANCEL's INVITE itself
    assert ("sip.cancel", {"reason": "Q.850;cause=16"}) in h.records.events


async def test_a_cancel_because_another_phone_answered_says_answered_elsewhere():
    h = Harness()
    first, _ = await h.ringing(2)
    h.invite.cancel('SIP;cause=200;text="Call completed elsewhere"')
    finish = await h.done()
    assert finish.reason is EndReason.ANSWERED_ELSEWHERE
    assert first.hangups == [{"reason": "answered elsewhere"}]


async def test_a_cancel_that_crosses_the_accept_ends_the_call_unanswered():
    h = Harness()
    first, _ = await h.ringing(2)
    first.accept(connect=False)
    h.invite.cancel("")
    first.ice("connected")
    finish = await h.done()
    assert finish.reason is EndReason.CANCELLED and h.invite.dialog is None


@pytest.mark.parametrize(
    ("info", "reason", "status"),
    [({"busy": "true"}, EndReason.BUSY, 486), ({}, EndReason.DECLINED, 603)],
)
async def test_it_reports_the_agents_rejection(info, reason, status):
    h = Harness()
    first, second = await h.ringing(2)
    first.reject(**info)
    await asyncio.sleep(0)
    assert not h.task.done()  # one agent still rings
    second.reject()
    finish = await h.done()
    assert finish.reason is reason
    assert h.invite.rejected == status
    assert finish.text == reason.ending.text


async def test_nobody_answering_in_time_is_no_answer():
    h = Harness(Route(**{**VENDAS.__dict__, "ring_timeout": 0.05}))
    first, second = await h.ringing(2)
    finish = await h.done()
    assert finish.reason is EndReason.NO_ANSWER
    assert h.invite.rejected == 480
    assert first.hangups == second.hangups == [{"reason": "not answered"}]
    assert h.records.kinds()[-1] == "sip.reject"


async def test_a_worker_lost_while_ringing_ends_the_call_when_no_agent_is_left():
    h = Harness(Route(**{**VENDAS.__dict__, "agents": (2002,)}))
    (first,) = await h.ringing()
    h.media.legs[0].lose()
    finish = await h.done()
    assert finish.reason is EndReason.MEDIA_LOST
    assert h.invite.rejected == 503
    assert first.hangups == [{"reason": "media failure"}]


async def test_a_worker_lost_while_ringing_leaves_the_other_agents_ringing():
    h = Harness()
    first, second = await h.ringing(2)
    h.media.legs[0].lose()
    await asyncio.sleep(0.01)
    assert first.hangups == [{"reason": "media failure"}] and not h.task.done()
    second.accept()
    await h.answered()
    h.invite.dialog.remote_bye()
    assert (await h.done()).reason is EndReason.PHONE_HUNG_UP


async def test_a_worker_lost_while_talking_hangs_up_both_sides_and_keeps_the_cdr_answered():
    h = Harness()
    first, _ = await h.ringing(2)
    first.accept()
    await h.answered()
    h.media.legs[0].lose()
    finish = await h.done()
    assert finish.reason is EndReason.MEDIA_LOST and finish.answered
    assert finish.text == "the media worker died"
    assert h.invite.dialog.byes == 1
    assert first.hangups == [{"reason": "media failure"}]


async def test_an_ice_failure_after_the_accept_fails_the_call():
    h = Harness()
    first, second = await h.ringing(2)
    first.accept(connect=False)
    await asyncio.sleep(0.01)
    assert second.hangups == [{"reason": "answered elsewhere"}]
    first.fail("ice failed")
    finish = await h.done()
    assert finish.reason is EndReason.ICE_FAILED and not finish.answered
    assert h.invite.rejected == 503


async def test_an_accept_whose_webrtc_leg_never_connects_times_out():
    h = Harness(ice_timeout=0.05)
    first, _ = await h.ringing(2)
    first.accept(connect=False)
    finish = await h.done()
    assert finish.reason is EndReason.ICE_FAILED
    assert first.hangups == [{"reason": "ice timeout"}]
    assert "app.ice_timeout" in h.records.kinds()


async def test_hold_and_resume_from_the_app_reinvite_the_phone():
    h = Harness()
    first, _ = await h.ringing(2)
    first.accept()
    await h.answered()
    leg = h.media.legs[0]
    h.call.app_message("session-2002", {"type": "hold"})
    h.call.app_message("session-2002", {"type": "unhold"})
    h.call.app_message("session-other", {"type": "hold"})  # not this call's session: ignored
    await asyncio.sleep(0.01)
    dialog = h.invite.dialog
    assert ["a=sendonly" in sdp for sdp in dialog.reinvites] == [True, False]
    assert leg.hold == ["sendonly", "sendrecv"]
    assert [k for k in h.records.kinds() if k.startswith("sip.")][-2:] == ["sip.hold", "sip.unhold"]
    dialog.remote_bye()
    await h.done()


async def test_dtmf_goes_both_ways():
    h = Harness()
    first, _ = await h.ringing(2)
    first.accept()
    await h.answered()
    leg = h.media.legs[0]
    leg.phone_dtmf("5")
    h.call.app_message("session-2002", {"type": "dtmf", "digit": "7#"})
    await asyncio.sleep(0.01)
    assert h.account.system_messages == [(2002, {"type": "dtmf", "digit": "5", "sessionID": "session-2002"})]
    assert leg.dtmf == ["7"]
    assert ("dtmf.phone", {"digit": "5"}) in h.records.events
    assert ("dtmf.app", {"digit": "7"}) in h.records.events
    h.invite.dialog.remote_bye()
    await h.done()


async def test_a_transfer_from_the_app_goes_through_the_records():
    h = Harness()
    first, _ = await h.ringing(2)
    first.accept()
    await h.answered()
    h.call.app_message("session-2002", {"type": "transfer", "exten": "1003"})
    h.call.app_message("session-2002", {"type": "transfer", "exten": "10;03"})  # not a number
    h.call.app_message("session-2002", {"type": "transfer", "exten": "1" * 33})  # too long
    await asyncio.sleep(0.01)
    assert h.records.transfers == ["1003"]
    assert ("app.transfer", {"exten": "1003", "via": "BlindTransfer"}) in h.records.events
    h.invite.dialog.remote_bye()
    await h.done()


async def test_a_reinvite_moves_the_media_and_is_recorded():
    h = Harness()
    first, _ = await h.ringing(2)
    first.accept()
    await h.answered()
    request = Request(sdp=PHONE_OFFER.replace("4000", "4100"))
    answer = await h.call.on_reinvite(request)
    assert answer == answer_sdp(h.media.legs[0].port)
    assert h.media.legs[0].offers[-1] == request.sdp
    await asyncio.sleep(0.01)
    assert ("sip.reinvite", {"direction": "sendrecv"}) in h.records.events
    h.invite.dialog.remote_bye()
    await h.done()


async def test_an_exception_while_talking_keeps_the_cdr_answered_and_says_what_failed():
    h = Harness()
    first, _ = await h.ringing(2)
    first.accept()
    await h.answered()
    h.records.fail_on = "dtmf.app"
    h.call.app_message("session-2002", {"type": "dtmf", "digit": "1"})
    finish = await h.done()
    assert finish.answered and finish.reason is EndReason.INTERNAL_ERROR
    assert "RuntimeError: cannot write dtmf.app" in finish.text
    assert h.invite.dialog.byes == 1 and first.hangups == [{"reason": "error"}]


@pytest.mark.parametrize(
    ("route", "offer", "reason", "status"),
    [
        (None, PHONE_OFFER, EndReason.NOT_FOUND, 404),
        (Route(**{**VENDAS.__dict__, "enabled": False}), PHONE_OFFER, EndReason.DISABLED, 480),
        (VENDAS, None, EndReason.NOT_ACCEPTABLE, 488),
        (Route(**{**VENDAS.__dict__, "agents": ()}), PHONE_OFFER, EndReason.NO_ANSWER, 480),
    ],
)
async def test_it_refuses_what_it_cannot_route(route, offer, reason, status):
    h = Harness(route, invite=FakeInvite(offer=offer))
    finish = await h.done()
    assert finish.reason is reason and h.invite.rejected == status
    assert h.media.legs == [] and h.invite.provisional == []


async def test_a_failed_login_is_unavailable():
    h = Harness(accounts=FakeAccounts(fail=ConnectionError("chat down")))
    finish = await h.done()
    assert finish.reason is EndReason.UNAVAILABLE and "chat down" in finish.text
    assert h.invite.rejected == 503


async def test_no_common_codec_is_not_acceptable():
    h = Harness(media=FakeMedia(not_acceptable=True))
    finish = await h.done()
    assert finish.reason is EndReason.NOT_ACCEPTABLE and h.invite.rejected == 488
    assert all(leg.closed for leg in h.media.legs)


async def test_a_cancelled_edge_task_closes_the_call_once():
    h = Harness()
    first, _ = await h.ringing(2)
    h.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await h.task
    assert [f.reason for f in h.records.finished] == [EndReason.SHUTDOWN]
    assert h.invite.rejected == 503 and first.hangups == [{"reason": "shutdown"}]


def test_every_kind_of_event_has_a_handler():
    call = BridgedCall(FakeInvite(), records=None, accounts=None, media=None)
    assert set(call._handlers) == set(typing.get_args(ev.Event))


async def test_an_event_that_does_not_fit_the_state_is_logged_not_lost(caplog):
    h = Harness()
    await h.ringing(2)
    with caplog.at_level(logging.DEBUG, logger="edge.call"):
        h.call.post(ev.IceTimeout())  # no accept yet: nothing to time out
        h.call.post(ev.SipEnded("remote bye"))  # no dialog yet
        await asyncio.sleep(0.01)
    assert "IceTimeout ignored in ringing" in caplog.text and "SipEnded ignored in ringing" in caplog.text
    assert not h.task.done()
    h.invite.cancel("")
    await h.done()


def test_only_inbound_calls_are_built():
    with pytest.raises(ValueError, match="outbound"):
        BridgedCall(FakeInvite(), records=None, accounts=None, media=None, direction=Direction.OUTBOUND)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ('SIP;cause=200;text="Call completed elsewhere"', EndReason.ANSWERED_ELSEWHERE),
        ("SIP ; cause = 200", EndReason.ANSWERED_ELSEWHERE),
        ('Q.850;cause=16;text="Normal Clearing"', EndReason.CANCELLED),
        ("Q.850;cause=26", EndReason.CANCELLED),
        ("SIP;cause=²00", EndReason.CANCELLED),
        ("", EndReason.CANCELLED),
        ("garbage;;;=", EndReason.CANCELLED),
    ],
)
def test_it_classifies_a_cancel_by_its_reason_header(header, reason):
    assert cancel_reason(header) is reason
