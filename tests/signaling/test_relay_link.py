"""The links between signaling nodes, without Redis: frames numbered, acknowledged, resent, delivered once and in
order; a peer that never acknowledges ends the link; garbage is not a frame; a client that does not read is closed;
the room node's end behaves as a WebSocket."""

from __future__ import annotations

import pytest
from aiohttp import WSMsgType

from signaling.node_link import BEHIND, MAX_BEHIND, DoorLink, RemoteSocket, parse_frame
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


def test_a_door_closes_a_client_that_does_not_read() -> None:
    sent: list[tuple[str, str]] = []
    door = DoorLink("l1", "door", "room", lambda node, text: sent.append((node, text)), resend_after=1.0)
    for n in range(MAX_BEHIND):
        door.deliver({"text": f"m{n}"})
    door.deliver({"text": "one too many"})
    door.deliver({"text": "and after"})
    queued = [door.outgoing.get_nowait() for _ in range(door.outgoing.qsize())]
    assert queued[:2] == [("text", "m0"), ("text", "m1")]
    assert queued[-1] == ("close", BEHIND) and len(queued) == MAX_BEHIND + 1


async def test_the_room_node_sees_a_carried_client_as_a_websocket() -> None:
    published: list[tuple[str, str]] = []
    socket = RemoteSocket(
        "l2", "room", "door", lambda node, text: published.append((node, text)), role="cabin", peer="1", resend_after=1
    )
    socket.deliver({"text": '{"type": "hello"}'})
    socket.deliver({"binary": True})
    assert (await socket.receive(timeout=1)).data == '{"type": "hello"}'
    assert (await socket.receive(timeout=1)).type is WSMsgType.BINARY
    await socket.send_str("welcome")
    assert parse_frame(published[-1][1]) is not None and published[-1][0] == "door"
    socket.deliver({"close": [1000, "client gone"]})
    assert [message async for message in socket] == []  # the client's close ends the handler's loop
    with pytest.raises(ConnectionResetError):
        await socket.send_str("too late")
    assert await socket.close() and socket.closed and not await socket.close()
