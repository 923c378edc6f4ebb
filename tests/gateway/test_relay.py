"""One track read once, handed to several consumers, with bounded memory and a task that close() awaits."""

from __future__ import annotations

import asyncio
import fractions

import pytest
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from gateway.media.relay import TrackRelay


class Numbered(MediaStreamTrack):
    """A video source whose frames carry their number in pts; it ends after `count` frames."""

    kind = "video"

    def __init__(self, count: int = 1000) -> None:
        super().__init__()
        self.count = count
        self.sent = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def recv(self) -> VideoFrame:
        await self.gate.wait()
        if self.sent >= self.count or self.readyState != "live":
            raise MediaStreamError
        frame = VideoFrame(width=16, height=16)
        frame.pts = self.sent
        frame.time_base = fractions.Fraction(1, 30)
        self.sent += 1
        await asyncio.sleep(0)
        return frame


async def test_every_subscriber_gets_the_same_frames_from_one_reading() -> None:
    source = Numbered(count=5)
    async with TrackRelay(source) as relay:
        first, second = relay.subscribe(keep=10), relay.subscribe(keep=10)
        got_first = [(await first.recv()).pts for _ in range(5)]
        got_second = [(await second.recv()).pts for _ in range(5)]
        assert got_first == got_second == [0, 1, 2, 3, 4]
        assert source.sent == 5 and relay.frames == 5
        # The source ended: so do its subscribers.
        with pytest.raises(MediaStreamError):
            await first.recv()
        assert first.readyState == "ended"


async def test_a_slow_subscriber_keeps_only_the_latest_frames() -> None:
    source = Numbered(count=20)
    async with TrackRelay(source) as relay:
        slow = relay.subscribe(keep=2)
        fast = relay.subscribe(keep=100)
        for _ in range(20):
            await fast.recv()
        assert [(await slow.recv()).pts for _ in range(2)] == [18, 19]
        assert slow.dropped == 18


async def test_a_stopped_subscriber_is_forgotten_and_wakes_up_ended() -> None:
    source = Numbered()
    source.gate.clear()
    async with TrackRelay(source) as relay:
        track = relay.subscribe()
        waiting = asyncio.create_task(track.recv())
        await asyncio.sleep(0.01)
        track.stop()
        with pytest.raises(MediaStreamError):
            await waiting
        assert relay.subscribers == 0


async def test_close_cancels_the_reading_task_and_ends_every_subscriber() -> None:
    source = Numbered()
    source.gate.clear()  # the source blocks: only cancellation can end the relay's task
    relay = TrackRelay(source)
    track = relay.subscribe()
    waiting = asyncio.create_task(track.recv())
    await asyncio.sleep(0.01)
    await relay.close()
    await relay.close()
    with pytest.raises(MediaStreamError):
        await waiting
    # A subscription after close is an ended track, not a new task.
    late = relay.subscribe()
    with pytest.raises(MediaStreamError):
        await late.recv()
    assert source.readyState == "live", "the relay does not own its source"


async def test_keep_must_be_positive() -> None:
    async with TrackRelay(Numbered()) as relay:
        with pytest.raises(ValueError, match="at least one frame"):
            relay.subscribe(keep=0)
