"""The professional's media as they arrived, still encoded, for the cabin screen: decoded once, by its browser.

The gateway itself never looks at the professional's picture: it only hands it to the cabin screen's page over the
loopback peer connection. Decoding it there and encoding it again for that hop costs a VP8 decode and a VP8 encode
per frame, and a full picture's latency. Instead the encoded frames are taken where aiortc's receiver hands them to
its decoder, and packed again as they are by the loopback sender (aiortc's encoders pack an `av.Packet` without
encoding it, rtcrtpsender.py:322-323, as MediaPlayer(decode=False) does).

Three seams into aiortc 1.16, each checked, each in this module only:
- the receiver's decoder queue (`_RTCRtpReceiver__decoder_queue`, rtcrtpreceiver.py:291), replaced before the
  receiver starts by `EncodedTap`, whose `put` takes (codec, JitterFrame) and whose `get` holds aiortc's decoder
  thread idle until the receiver stops;
- a keyframe request from the cabin screen: the loopback sender's `_send_keyframe` (rtcrtpsender.py:351), called on
  a PLI or FIR, is turned into a PLI to the professional (`_send_rtcp_pli`, rtcrtpreceiver.py:630);
- the codec: the loopback hop must negotiate the codec the professional sends (`codec_preferences_for`).
A later aiortc without these names leaves the tap off and the gateway decodes as before (`tap_receiver` says so).

The voice is tapped the same way but still decoded too (`keep_decoding`): the gateway listens to it (the call's
liveness, the echo canceller's far end); only its second Opus encode, for the screen, is saved.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Final

from aiortc import RTCRtpCodecCapability, RTCRtpReceiver, RTCRtpSender
from av.packet import Packet

from gateway.lifecycle import AsyncResource
from gateway.media.relay import RelayedTrack

log = logging.getLogger("cabine.gateway.media")

_DECODER_QUEUE: Final = "_RTCRtpReceiver__decoder_queue"
_DECODER_THREAD: Final = "_RTCRtpReceiver__decoder_thread"
# Frames a slow subscriber may fall behind before it skips to the next keyframe (a second at 30 fps).
KEEP: Final = 30
# Keyframe requests on their way (a PLI is one RTCP packet: sent at once, never waited for).
_pending: set[asyncio.Future[None]] = set()


def is_keyframe(mime_type: str, data: bytes) -> bool:
    """Whether an encoded frame can be decoded on its own (VP8: the frame tag's P bit is 0, RFC 6386 §9.1; H264:
    an IDR slice, NAL type 5, in Annex B as aiortc's depayloader gives it; audio: always)."""
    name = mime_type.lower()
    if name.startswith("audio/"):
        return True
    if not data:
        return False
    if name == "video/vp8":
        return data[0] & 0x01 == 0
    if name == "video/h264":
        i = 0
        while (i := data.find(b"\x00\x00\x01", i)) != -1 and i + 3 < len(data):
            if data[i + 3] & 0x1F == 5:
                return True
            i += 3
        return False
    return False


# on_frame(mime type, clock rate, encoded frame, RTP timestamp)
OnFrame = Callable[[str, int, bytes, int], None]


class EncodedTap:
    """Stands in for aiortc's decoder queue: frames go to `on_frame` on the event loop.

    Without `inner`, aiortc's decoder thread blocks in `get()` until the receiver stops (aiortc then puts None), so
    it decodes nothing; with it, every frame also goes on to `inner`, aiortc's own queue, and is decoded as before.
    """

    def __init__(self, on_frame: OnFrame, inner: queue.Queue[Any] | None = None) -> None:
        self._on_frame = on_frame
        self._inner = inner
        self._stopped = threading.Event()

    def put(self, item: Any) -> None:
        if item is not None:
            codec, frame = item
            self._on_frame(str(codec.mimeType), int(codec.clockRate), bytes(frame.data), int(frame.timestamp))
        if self._inner is not None:
            self._inner.put(item)
        elif item is None:
            self._stopped.set()

    def get(self) -> Any:
        if self._inner is not None:
            return self._inner.get()
        self._stopped.wait()
        return None


def tap_receiver(receiver: RTCRtpReceiver, on_frame: OnFrame, *, keep_decoding: bool = False) -> bool:
    """Have `receiver` hand its encoded frames to `on_frame`, instead of decoding them or, with `keep_decoding`,
    as well; True if done.

    Call it before the answer (or offer) that starts the receiver is applied. False, and nothing changed, when the
    receiver already decodes or aiortc keeps its decoder queue elsewhere.
    """
    inner = getattr(receiver, _DECODER_QUEUE, None)
    if not isinstance(inner, queue.Queue) or getattr(receiver, _DECODER_THREAD, None) is not None:
        return False
    setattr(receiver, _DECODER_QUEUE, EncodedTap(on_frame, inner if keep_decoding else None))
    return True


def request_keyframe(receiver: RTCRtpReceiver) -> bool:
    """Ask the sender of `receiver`'s stream for a keyframe (RTCP PLI); whether it could be asked."""
    send_pli = getattr(receiver, "_send_rtcp_pli", None)
    sources = receiver.getSynchronizationSources()
    if send_pli is None or not sources:
        return False
    for source in sources:
        task = asyncio.ensure_future(send_pli(source.source))
        _pending.add(task)
        task.add_done_callback(_pending.discard)
    return True


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> bool:
    """Call `callback` when the peer of `sender` asks for a keyframe (PLI or FIR); whether it is wired."""
    if not callable(getattr(sender, "_send_keyframe", None)):
        return False
    sender._send_keyframe = callback  # type: ignore[method-assign]
    return True


def codec_preferences_for(mime_type: str) -> list[RTCRtpCodecCapability]:
    """The sender capabilities of `mime_type` only (with their RTX for video), for the loopback hop's transceiver."""
    kind = mime_type.split("/", 1)[0].lower()
    capabilities = RTCRtpSender.getCapabilities(kind)
    wanted = [c for c in capabilities.codecs if c.mimeType.lower() == mime_type.lower()]
    rtx = [c for c in capabilities.codecs if c.mimeType.lower() == "video/rtx"]
    return [*wanted, *rtx] if wanted else []


class EncodedTrack(RelayedTrack):
    """A subscriber of an EncodedRelay: yields `av.Packet`s, starting at a keyframe and never after a gap."""

    def __init__(self, relay: EncodedRelay) -> None:
        super().__init__(relay, relay.kind, KEEP)
        self.skipped = 0
        self._encoded: EncodedRelay | None = relay
        self._waiting_keyframe = True

    @property
    def mime_type(self) -> str | None:
        """The codec the frames are in (the call's negotiated one), None if unknown or ended."""
        return None if self._encoded is None or self.readyState != "live" else self._encoded.mime_type

    def request_keyframe(self) -> None:
        """The consumer lost a picture (the cabin screen sent a PLI): ask the professional for a keyframe."""
        if self._encoded is not None and self.readyState == "live":
            self._encoded.want_keyframe()

    def _put_encoded(self, data: bytes, timestamp: int, keyframe: bool, time_base: fractions.Fraction) -> None:
        if self._waiting_keyframe and not keyframe:
            self.skipped += 1
            return
        self._waiting_keyframe = False
        if len(self._frames) >= KEEP:
            # Behind by a second: a frame dropped here would break every frame after it until a keyframe.
            self.skipped += len(self._frames)
            self._frames.clear()
            self._waiting_keyframe = True
            self.request_keyframe()
            return
        packet = Packet(data)
        packet.pts = timestamp
        packet.time_base = time_base
        self._put(packet)


class EncodedRelay(AsyncResource):
    """The professional's encoded video, to any number of EncodedTracks; fed by `EncodedTap` through `feed`.

    `keyframe_source` asks the professional for a keyframe (a new subscriber, one that fell behind, or the cabin
    screen's own request). close() ends every subscriber; idempotent.
    """

    def __init__(
        self, *, kind: str = "video", keyframe_source: Callable[[], bool] | None = None, label: str = ""
    ) -> None:
        self.kind = kind
        self.label = label
        self.mime_type: str | None = None
        self.frames = 0
        self._time_base = fractions.Fraction(1, 90_000)
        self._keyframe_source = keyframe_source
        self._subscribers: set[EncodedTrack] = set()
        self._closed = False

    def feed(self, mime_type: str, clock_rate: int, data: bytes, timestamp: int) -> None:
        """One encoded frame from the tap (on the event loop)."""
        if self._closed:
            return
        self.mime_type = mime_type
        self.frames += 1
        keyframe = is_keyframe(mime_type, data)
        if self._time_base.denominator != clock_rate:
            self._time_base = fractions.Fraction(1, clock_rate)
        for track in list(self._subscribers):
            track._put_encoded(data, timestamp, keyframe, self._time_base)

    def _unsubscribe(self, track: RelayedTrack) -> None:
        if isinstance(track, EncodedTrack):
            self._subscribers.discard(track)

    def subscribe(self) -> EncodedTrack:
        track = EncodedTrack(self)
        if self._closed:
            track._end()
            return track
        self._subscribers.add(track)
        self.want_keyframe()
        return track

    def want_keyframe(self) -> None:
        if self._keyframe_source is not None and not self._closed and not self._keyframe_source():
            log.debug("%s: no keyframe could be asked for yet", self.label)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for track in list(self._subscribers):
            track._end()
        self._subscribers.clear()
