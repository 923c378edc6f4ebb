"""The links between signaling nodes, without Redis: frames numbered, acknowledged, resent, delivered once and in
order; a peer that never acknowledges ends the link; garbage is not a frame."""

from __future__ import annotations

import pytest

from signaling.node_link import parse_frame
from signaling.relay_link import GIVE_UP_AFTER, MAX_UNACKED, Inbox, LinkBroken, Outbox


def test_frames_come_out_in_order_once_whatever_the_order_they_arrive_in() -> None:
    inbox: Inbox[str] = Inbox()
    assert inbox.receive(2, "b") == []  # early: held
    assert inbox.receive(3, "c") == []
    assert inbox.receive(1, "a") == ["a", "b", "c"]
    assert inbox.receive(2, "b") == []  # a resend of what was delivered
    assert inbox.receive(4, "d") == ["d"]
    assert inbox.delivered == 4


def test_what_is_not_acknowledged_is_sent_again_until_it_is() -> None:
    outbox: Outbox[str] = Outbox(resend_after=1.0)
    assert [outbox.push(p, 0.0) for p in "abc"] == [1, 2, 3]
    assert outbox.due(0.5) == []
    outbox.ack(1)
    assert outbox.due(1.0) == [(2, "b"), (3, "c")]
    assert outbox.due(1.5) == []  # just resent
    outbox.ack(3)  # acknowledgements are cumulative
    assert outbox.pending == 0 and outbox.due(10.0) == []


def test_a_peer_that_never_acknowledges_ends_the_link() -> None:
    outbox: Outbox[str] = Outbox()
    outbox.push("a", 0.0)
    outbox.due(GIVE_UP_AFTER - 1)
    with pytest.raises(LinkBroken, match="not acknowledged for"):
        outbox.due(GIVE_UP_AFTER + 1)
    flooded: Outbox[int] = Outbox()
    for n in range(MAX_UNACKED):
        flooded.push(n, 0.0)
    with pytest.raises(LinkBroken, match="not acknowledged"):
        flooded.push(0, 0.0)


def test_a_missing_frame_with_too_much_behind_it_ends_the_link() -> None:
    inbox: Inbox[int] = Inbox()
    for seq in range(2, 2 + 1024):
        assert inbox.receive(seq, seq) == []
    with pytest.raises(LinkBroken, match="frame 1 missing"):
        inbox.receive(5000, 5000)


@pytest.mark.parametrize(
    "text",
    [
        b"\xff",
        b"null",
        b"[]",
        b'{"k":"x","l":"a","n":"b","s":1}',
        b'{"k":"f","l":1,"n":"b","s":1}',
        b'{"k":"f","l":"a","n":"b","s":true}',
        b'{"k":"f","l":"a","n":"b","s":-2}',
        b'{"k":"f","l":"a","n":"b","s":1,"p":[]}',
    ],
)
def test_garbage_is_not_a_frame(text: bytes) -> None:
    assert parse_frame(text) is None


def test_a_frame_and_an_acknowledgement_are_read_back() -> None:
    frame = parse_frame(b'{"k":"f","l":"L","n":"N","s":3,"p":{"text":"hi"}}')
    assert frame is not None and (frame.kind, frame.link, frame.node, frame.seq) == ("f", "L", "N", 3)
    assert frame.payload == {"text": "hi"}
    ack = parse_frame(b'{"k":"a","l":"L","n":"N","s":7}')
    assert ack is not None and (ack.kind, ack.seq, ack.payload) == ("a", 7, {})
