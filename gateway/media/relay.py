"""One track read once and handed to several consumers (the call, the cabin screen). Frames stay in memory only.

aiortc's MediaRelay does the same, but its reading task belongs to no one: this one is kept and cancelled-and-awaited
on close, and each subscriber holds a bounded number of frames (older ones are dropped, as live media should be).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import Any, Protocol, TypeAlias

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.frame import Frame
from av.packet import Packet

from gateway.lifecycle import AsyncResource

log = logging.getLogger("cabine.gateway.media")

# av's Packet is generic for type checkers only.
Media: TypeAlias = "Frame | Packet[Any]"


class Subscribed(Protocol):
    """What a relay offers the tracks it feeds: forgetting one that stopped."""

    def _unsubscribe(self, track: RelayedTrack) -> None: ...


class RelayedTrack(MediaStreamTrack):
    """A subscriber of a relay: a track like any other, ending when the source ends or when stopped."""

    def __init__(self, relay: Subscribed, kind: str, keep: int) -> None:
        super().__init__()
        self.kind = kind
        self.dropped = 0
        self._relay: Subscribed | None = relay
        self._keep = keep
        self._frames: collections.deque[Media] = collections.deque()
        self._ready = asyncio.Event()
        self._source_ended = False

    def _put(self, frame: Media) -> None:
        self._frames.append(frame)
        while len(self._frames) > self._keep:
            self._frames.popleft()
            self.dropped += 1
        self._ready.set()

    def _end(self) -> None:
        self._source_ended = True
        self._ready.set()

    async def recv(self) -> Media:
        """The next frame. Raises: MediaStreamError: the track was stopped or its source ended."""
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if self._frames:
                return self._frames.popleft()
            if self._source_ended:
                self.stop()
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()

    def stop(self) -> None:
        super().stop()
        relay, self._relay = self._relay, None
        if relay is not None:
            relay._unsubscribe(self)
        self._frames.clear()
        self._ready.set()


class TrackRelay(AsyncResource):
    """Reads `source` in one kept task, started by the first subscription; an async context manager.

    close() is idempotent; it ends every subscriber but does not stop the source (its owner does).
    """

    def __init__(self, source: MediaStreamTrack, *, label: str = "") -> None:
        self.kind: str = source.kind
        self.label = label or f"relay {self.kind}"
        self.frames = 0
        self._source = source
        self._subscribers: set[RelayedTrack] = set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self, *, keep: int = 1) -> RelayedTrack:
        """A new track fed with the source's frames; it holds at most `keep` frames not yet read.

        Raises:
            ValueError: `keep` is less than 1.
        """
        if keep < 1:
            raise ValueError("a subscriber must keep at least one frame")
        track = RelayedTrack(self, self.kind, keep)
        if self._closed:
            track._end()
            return track
        self._subscribers.add(track)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.label)
        return track

    def _unsubscribe(self, track: RelayedTrack) -> None:
        self._subscribers.discard(track)

    async def _run(self) -> None:
        try:
            while True:
                try:
                    frame = await self._source.recv()
                except MediaStreamError:
                    return
                self.frames += 1
                for track in list(self._subscribers):
                    track._put(frame)
        finally:
            for track in list(self._subscribers):
                track._end()

    async def close(self) -> None:
        """Cancel and await the reading task and end every subscriber; idempotent."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, MediaStreamError):
                await task
        for track in list(self._subscribers):
            track._end()
        self._subscribers.clear()
