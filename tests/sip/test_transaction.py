"""sip.transaction: the four state machines, driven directly (timers fired by hand)."""

from __future__ import annotations

from sip.message import SipRequest, make_response, parse
from sip.timers import Timers
from sip.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    TransactionState,
    transaction_key,
)

T = Timers(t1=0.5, t2=4.0, t4=5.0)
ADDR = ("127.0.0.1", 5060)


def request(method: str = "INVITE") -> SipRequest:
    msg = parse(
        f"{method} sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
        f"From: <sip:a@b>;tag=f\r\nTo: <sip:x@y>\r\nCall-ID: c\r\nCSeq: 1 {method}\r\n\r\n".encode())
    assert isinstance(msg, SipRequest)
    return msg


class Wire:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.ended: list[object] = []
        self.responses: list[int] = []

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append(data)


async def test_timer_a_doubles_and_timer_b_reports_408() -> None:
    wire = Wire()
    tx = ClientInviteTransaction(request(), ADDR, wire.send, T, wire.ended.append,
                                 lambda r: wire.responses.append(r.status))
    tx.start()
    intervals = []
    for _ in range(4):
        tx._timer_a_expired()
        intervals.append(tx._a_interval)
    assert intervals == [1.0, 2.0, 4.0, 8.0]  # no T2 cap for INVITE
    assert len(wire.sent) == 5
    tx._timer_b_expired()
    assert tx.state == TransactionState.TERMINATED and wire.responses == [408]
    assert wire.ended == [tx] and tx.final.result().status == 408


async def test_an_ict_acks_a_non_2xx_itself_and_passes_2xx_retransmits_up() -> None:
    wire = Wire()
    tx = ClientInviteTransaction(request(), ADDR, wire.send, T, wire.ended.append,
                                 lambda r: wire.responses.append(r.status))
    tx.start()
    busy = make_response(tx.request, 486, to_tag="t")
    tx.receive_response(busy)
    assert tx.state == TransactionState.COMPLETED
    ack = parse(wire.sent[-1])
    assert ack.method == "ACK" and transaction_key(ack) == tx.key and ack.to.tag == "t"
    tx.receive_response(busy)
    assert wire.sent[-1] == wire.sent[-2] and wire.responses == [486]
    tx.terminate()

    tx2 = ClientInviteTransaction(request(), ADDR, wire.send, T, None,
                                  lambda r: wire.responses.append(r.status))
    tx2.start()
    ok = make_response(tx2.request, 200, to_tag="t")
    tx2.receive_response(ok)
    tx2.receive_response(ok)
    assert tx2.state == TransactionState.ACCEPTED and wire.responses[-2:] == [200, 200]
    tx2.terminate()


async def test_timer_e_doubles_up_to_t2_and_stays_at_t2_once_proceeding() -> None:
    wire = Wire()
    tx = ClientNonInviteTransaction(request("BYE"), ADDR, wire.send, T, None, None)
    tx.start()
    intervals = []
    for _ in range(5):
        tx._timer_e_expired()
        intervals.append(tx._e_interval)
    assert intervals == [1.0, 2.0, 4.0, 4.0, 4.0]
    tx.receive_response(make_response(tx.request, 100))
    tx._e_interval = 0.5
    tx._timer_e_expired()
    assert tx._e_interval == T.t2 and tx.state == TransactionState.PROCEEDING
    tx.receive_response(make_response(tx.request, 200, to_tag="t"))
    assert tx.state == TransactionState.COMPLETED
    tx.receive_response(make_response(tx.request, 500, to_tag="t"))  # absorbed
    assert tx.final.result().status == 200
    tx._timer_k_expired()
    assert tx.terminated


async def test_an_ist_resends_finals_until_the_ack_then_absorbs() -> None:
    wire = Wire()
    tx = ServerInviteTransaction(request(), ADDR, wire.send, T, wire.ended.append)
    tx.send_response(make_response(tx.request, 180, to_tag="t"))
    tx.receive_request(tx.request)
    assert wire.sent[-1] == wire.sent[-2]  # the retransmitted INVITE got the 180 again
    tx.send_response(make_response(tx.request, 486, to_tag="t"))
    intervals = []
    for _ in range(5):
        tx._timer_g_expired()
        intervals.append(tx._g_interval)
    assert intervals == [1.0, 2.0, 4.0, 4.0, 4.0]
    ack = request("ACK")
    tx.receive_request(ack)
    assert tx.state == TransactionState.CONFIRMED
    sent = len(wire.sent)
    tx.receive_request(tx.request)
    assert len(wire.sent) == sent
    tx._timer_i_expired()
    assert wire.ended == [tx]


async def test_an_ist_goes_to_accepted_on_2xx_and_absorbs_the_invite() -> None:
    wire = Wire()
    tx = ServerInviteTransaction(request(), ADDR, wire.send, T, None)
    tx.send_response(make_response(tx.request, 200, to_tag="t"))
    assert tx.state == TransactionState.ACCEPTED
    tx.receive_request(tx.request)
    assert len(wire.sent) == 1
    tx.send_response(make_response(tx.request, 200, to_tag="t"))  # from the dialog
    assert len(wire.sent) == 2
    tx._timer_l_expired()
    assert tx.terminated


async def test_a_nist_absorbs_in_trying_and_replays_the_final() -> None:
    wire = Wire()
    tx = ServerNonInviteTransaction(request("BYE"), ADDR, wire.send, T, None)
    tx.receive_request(tx.request)
    assert wire.sent == []
    tx.send_response(make_response(tx.request, 200, to_tag="t"))
    tx.receive_request(tx.request)
    assert len(wire.sent) == 2 and wire.sent[0] == wire.sent[1]
    tx._timer_j_expired()
    assert tx.terminated
