"""One call with a professional: the RTCPeerConnection, its tracks and (medical only) the vitals channel."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp
from av import AudioFrame

from gateway.devices import fhir
from gateway.devices.readings import Reading
from gateway.documents.channel import LABEL as DOCUMENTS_LABEL
from gateway.documents.channel import DocumentsChannel, OnControl, OnDocument
from gateway.documents.photo import PhotoError, take_photo
from gateway.errors import GatewayError
from gateway.lifecycle import AsyncResource, cancel_and_wait
from gateway.media.adaptation import (
    AdaptationController,
    AdaptiveVideoTrack,
    VideoLadder,
    VideoLevel,
    lower_bitrate_floor,
)
from gateway.media.audio_fec import enable_opus_fec
from gateway.media.audio_level import install as install_audio_level
from gateway.media.codecs import VideoCodec, prefer_video_codec
from gateway.media.encoders import negotiated_codec
from gateway.media.passthrough import EncodedRelay, request_keyframe, tap_receiver
from gateway.media.relay import TrackRelay
from gateway.media.sources import MediaSources
from gateway.sctp_timing import quicker_retransmission
from gateway.sound.processor import VoiceProcessor
from gateway.sound.settings import SoundSettings
from gateway.sound.track import ProcessedMicrophone
from gateway.vitals import (
    CHANNEL_LABEL,
    Ack,
    ExportRequest,
    MeasurementRequest,
    PageHello,
    VitalsOutbox,
    VitalsProtocolError,
    dump_message,
    parse_page_message,
)
from signaling.protocol import AppointmentKind, IcePolicy, IceServer

log = logging.getLogger("cabine.gateway.session")

# The citizen's own image on the cabin screen: a corner of it, so half the camera's size and at most this rate.
SELF_VIEW_FPS = 15
# The professional's shared screen is over once no frame came for this long (they stopped sharing: their browser
# sends nothing on that transceiver any more).
SCREEN_IDLE_SECONDS = 1.5


def own_stream(transceiver: RTCRtpTransceiver) -> None:
    """Send this transceiver's track in a media stream of its own (aiortc puts every track in one stream).

    A browser lip-syncs the tracks of one stream by holding video back to match audio; with aiortc's timing that
    hold-back grew through a call (docs/performance.md: from 30 ms to more than 150 ms within 30 s). Alone in its
    stream, the cabin's video is shown as soon as it is decoded.
    """
    transceiver.sender._stream_id = uuid.uuid4().hex


class SessionError(GatewayError, RuntimeError):
    """A call could not be set up."""


# What aiortc raises for a description or candidate it cannot use (no common codec, wrong state).
AIORTC_ERRORS = (InvalidAccessError, InvalidStateError, OperationError)


class VideoRejected(SessionError):
    """The professional's browser can decode none of the cabin's video codecs (its answer rejects the video)."""


def video_rejected(sdp: str) -> bool:
    """Whether an answer rejects the video section (port 0), as a browser without a common codec answers."""
    for line in sdp.splitlines():
        if line.startswith("m=video "):
            return line.split()[1] == "0"
    return False


class PrivacyError(GatewayError, PermissionError):
    """Health data was about to go where it must not (a non-medical appointment)."""


@dataclass(slots=True)
class CallStats:
    """What a call has carried; counters only, never content."""

    video_frames_received: int = 0
    audio_frames_received: int = 0
    readings_sent: int = 0
    readings_acked: int = 0
    bad_vitals_messages: int = 0


# On an open vitals channel, each end says it is alive this often (the page answers with its own heartbeat).
HEARTBEAT_SECONDS = 1.0


def rtc_configuration(ice_servers: tuple[IceServer, ...], policy: IcePolicy = IcePolicy.ALL) -> RTCConfiguration:
    """Always explicit: aiortc's default configuration would use a public STUN server.

    Everything on one transport (max-bundle): one ICE negotiation and one path for the voice, the picture, the shared
    screen and the data. Under aiortc's default ("balanced"), a second transceiver of one kind (the shared screen's
    video) stays on the transport BUNDLE discards, and never receives.
    """
    return RTCConfiguration(
        iceServers=[RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential) for s in ice_servers],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY if policy is IcePolicy.RELAY else RTCIceTransportPolicy.ALL,
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
    )


def candidate_types(sdp: str) -> list[str]:
    """The types of the candidates in a session description ("host", "srflx", "relay"), in order."""
    found = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if "typ" in parts[:-1]:
                found.append(parts[parts.index("typ") + 1])
    return found


class CallSession(AsyncResource):
    """An async context manager around one RTCPeerConnection with the professional; close() is idempotent."""

    def __init__(
        self,
        appointment_id: str,
        kind: AppointmentKind,
        ice_servers: tuple[IceServer, ...],
        sources: MediaSources,
        *,
        outbox: VitalsOutbox | None = None,
        on_measurement_request: Callable[[str], Awaitable[None]] | None = None,
        label: str = "",
        self_view: bool = False,
        video_codec: VideoCodec | None = None,
        video: bool = True,
        ice_policy: IcePolicy = IcePolicy.ALL,
        adapt_video: bool = False,
        on_screen_share: Callable[[bool], None] | None = None,
        on_document: OnDocument | None = None,
        on_document_control: OnControl | None = None,
        sound: SoundSettings | None = None,
    ) -> None:
        """`video=False`: a call without any video section (after a professional's browser refused the video)."""
        if kind is AppointmentKind.MEDICAL and outbox is None:
            raise ValueError("a medical call needs a vitals outbox")
        if kind is not AppointmentKind.MEDICAL and outbox is not None:
            raise PrivacyError("a non-medical call must not carry a vitals outbox")
        self.appointment_id = appointment_id
        self.kind = kind
        self.stats = CallStats()
        self.label = label or f"apt {appointment_id[:12]}"
        self.ice_servers = ice_servers
        self.ice_policy = ice_policy
        self._pc = RTCPeerConnection(configuration=rtc_configuration(ice_servers, ice_policy))
        self.started_at = time.monotonic()
        # When something last came from the professional (a media frame, a data-channel message): a path that has
        # gone quiet is dead long before ICE consent checks would say so (~30 s).
        self.last_inbound = self.started_at
        self.connected_at: float | None = None
        self._sources = sources
        self._outbox = outbox
        self._on_request = on_measurement_request
        self._video_codec = video_codec
        self.video = video
        self._channel: RTCDataChannel | None = None
        self._device_states: dict[str, dict[str, object]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # The professional's tracks, by kind, each read once and shared: the call's own consumer, the cabin screen.
        self.remote: dict[str, TrackRelay] = {}
        # Their video, still encoded (the gateway never decodes it: only the cabin screen's browser shows it), and
        # their voice, also as it arrived, for the screen (the gateway decodes it for itself as well).
        self.remote_video: EncodedRelay | None = None
        self.remote_audio: EncodedRelay | None = None
        # With a cabin screen, a third stream: the professional's screen when they share it (a second video
        # transceiver the cabin only receives; the page starts and stops it with replaceTrack, no renegotiation).
        self.remote_screen: EncodedRelay | None = None
        self._screen_transceiver: RTCRtpTransceiver | None = None
        self.screen_sharing = False
        self._screen_frame = asyncio.Event()
        self._on_screen_share = on_screen_share
        # With a cabin screen, the documents the professional sends (any kind of appointment: never readings).
        self._on_document = on_document
        self._on_document_control = on_document_control
        self.documents: DocumentsChannel | None = None
        # With a cabin screen, the camera is shared too: the professional and the citizen's own image.
        self._self_view = self_view
        self._local_video: TrackRelay | None = None
        # On a narrow link the professional's copy of the camera gets fewer frames, then smaller ones.
        self._adapt_video = adapt_video
        self._adaptive: AdaptiveVideoTrack | None = None
        self._adaptation: AdaptationController | None = None
        self._audio_transceiver: RTCRtpTransceiver | None = None
        # Echo cancellation, noise suppression and gain control on the microphone, the professional's voice as
        # the far end (None: the microphone is sent as it is).
        self._sound = sound
        self.voice: VoiceProcessor | None = None
        self._video_transceiver: RTCRtpTransceiver | None = None
        self._closed = False
        self.connected = asyncio.Event()
        self.ended = asyncio.Event()
        install_audio_level()  # once is enough; every call checks, it costs nothing
        self._pc.on("track", self._on_track)
        self._pc.on("connectionstatechange", self._on_state)

    @property
    def sources(self) -> MediaSources:
        """The call's camera and microphone (their meters answer a self-test during the call)."""
        return self._sources

    @property
    def connection_state(self) -> str:
        return str(self._pc.connectionState)

    @property
    def answered(self) -> bool:
        """Whether the professional's answer was already applied (a second one belongs to an earlier offer)."""
        return self._pc.remoteDescription is not None

    def local_candidate_types(self) -> list[str]:
        """Types of the candidates gathered for the offer (aiortc gathers them all before the offer is made)."""
        description = self._pc.localDescription
        return [] if description is None else candidate_types(description.sdp)

    def selected_path(self) -> str | None:
        """The candidate pair in use, e.g. "relay/udp 192.0.2.7:50000 -> 198.51.100.9:3478 via turn/tcp"; no
        health data, only how the call travels (for logs and tests). None before the pair is chosen."""
        try:
            transceivers = self._pc.getTransceivers()
            dtls = transceivers[0].sender.transport if transceivers else self._pc.sctp.transport  # type: ignore[union-attr]
            # aiortc keeps aioice's connection private; reading it is the only way to know the chosen pair.
            pairs = dtls.transport._connection._nominated
        except (AttributeError, IndexError):
            return None
        pair = pairs.get(1)
        if pair is None:
            return None
        local, remote = pair.local_candidate, pair.remote_candidate
        text = f"{local.type}/{local.transport} {local.host}:{local.port} -> {remote.type} {remote.host}:{remote.port}"
        if local.type == "relay":
            inner = getattr(pair.protocol.transport, "_TurnTransport__inner_protocol", None)
            text += " via turn/" + ("tcp" if type(inner).__name__.startswith("TurnClientTcp") else "udp")
        return text

    def _tap_encoded(
        self, transceiver: RTCRtpTransceiver, on_encoded: Callable[..., None], what: str
    ) -> EncodedRelay | None:
        """A relay for a video the cabin receives, fed still encoded by `on_encoded` (None: the tap is not there),
        asking the professional's browser for a keyframe when a viewer needs one."""
        receiver = transceiver.receiver
        relay = EncodedRelay(keyframe_source=lambda: request_keyframe(receiver), label=f"{self.label} {what}")
        return relay if tap_receiver(receiver, on_encoded) else None

    async def create_offer(self) -> str:
        """Add the cabin's tracks (and the vitals channel for medical calls) and return the offer's SDP."""
        video = self._sources.video if self.video else None
        if video is not None and self._self_view:
            self._local_video = TrackRelay(video, label=f"{self.label} camera")
            video = self._local_video.subscribe(keep=2)
        if video is not None and self._adapt_video:
            # Only the professional's copy adapts; the citizen's own image stays as the camera gives it.
            self._adaptive = AdaptiveVideoTrack(video, VideoLadder.for_format(self._sources.format))
            video = self._adaptive
        if self._sources.audio is not None:
            microphone = self._sources.audio
            if self._sound is not None and self._sound.any:
                self.voice = VoiceProcessor(self._sound)
                microphone = ProcessedMicrophone(microphone, self.voice)
            self._audio_transceiver = self._pc.addTransceiver(microphone, direction="sendrecv")
            audio_transceiver = self._audio_transceiver
        else:
            audio_transceiver = self._pc.addTransceiver("audio", direction="recvonly")
        if self._self_view:
            voice = EncodedRelay(kind="audio", label=f"{self.label} remote audio")
            if tap_receiver(audio_transceiver.receiver, voice.feed, keep_decoding=True):
                self.remote_audio = voice
        if self.video:
            video_transceiver = self._pc.addTransceiver(video if video is not None else "video", direction="sendrecv")
            self._video_transceiver = video_transceiver
            self.remote_video = self._tap_encoded(video_transceiver, self._on_encoded_video, "remote video")
            if video is None:
                video_transceiver.direction = "recvonly"
            own_stream(video_transceiver)
            if self._video_codec is not None:
                prefer_video_codec(video_transceiver, self._video_codec)
        if self.video and self._self_view:
            screen = self._pc.addTransceiver("video", direction="recvonly")
            self._screen_transceiver = screen
            self.remote_screen = self._tap_encoded(screen, self._on_encoded_screen, "shared screen")
            if self._video_codec is not None:
                prefer_video_codec(screen, self._video_codec)
        if self._outbox is not None:
            self._channel = self._pc.createDataChannel(CHANNEL_LABEL, ordered=True)
            self._channel.on("open", self._on_channel_open)
            self._channel.on("message", self._on_channel_message)
        if self._self_view and self._on_document is not None:
            channel = self._pc.createDataChannel(DOCUMENTS_LABEL, ordered=True)
            self.documents = DocumentsChannel(
                channel, self._on_document, on_control=self._on_document_control, label=self.label
            )
        offer = await self._pc.createOffer()
        await self._pc.setLocalDescription(offer)
        if (self._channel is not None or self.documents is not None) and self._pc.sctp is not None:
            quicker_retransmission(self._pc.sctp)
        return str(self._pc.localDescription.sdp)

    async def accept_answer(self, sdp: str) -> None:
        """Raises: VideoRejected: the browser cannot decode the cabin's video; SessionError: another refusal."""
        if self.video and video_rejected(sdp):
            raise VideoRejected("the professional's browser decodes none of the cabin's video codecs")
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except (ValueError, AttributeError, KeyError, IndexError, *AIORTC_ERRORS) as exc:
            raise SessionError(f"the professional's answer was refused: {exc}") from exc
        # Before the first frame, when aiortc makes its encoders: voice protected by Opus in-band FEC, video free to
        # go below aiortc's 250 kbit/s floor, and the ladder that follows the link.
        if self._audio_transceiver is not None:
            enable_opus_fec(self._audio_transceiver)
        # What the professional sends, known from the answer: the screen's hop is negotiated with the same codecs.
        for transceiver in self._pc.getTransceivers():
            if transceiver is self._screen_transceiver:
                encoded = self.remote_screen
            else:
                encoded = {"audio": self.remote_audio, "video": self.remote_video}.get(transceiver.kind)
            codec = negotiated_codec(transceiver)
            if encoded is not None and codec is not None:
                encoded.mime_type = codec.mimeType
        if self._adaptive is not None and self._video_transceiver is not None and self._adaptation is None:
            lower_bitrate_floor(self._video_transceiver)
            self._adaptation = AdaptationController(self._video_transceiver.sender, self._adaptive, label=self.label)
            await self._adaptation.__aenter__()

    async def add_candidate(self, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None) -> None:
        """Add a trickled remote candidate; an empty one (end of candidates) is ignored."""
        if not candidate:
            return
        try:
            parsed = candidate_from_sdp(candidate.split(":", 1)[1])
        except (ValueError, IndexError) as exc:
            raise SessionError(f"unreadable ICE candidate: {exc}") from exc
        parsed.sdpMid = sdp_mid
        parsed.sdpMLineIndex = sdp_mline_index
        # mDNS names (*.local) are resolved by aioice; unresolvable ones are dropped by it.
        try:
            await self._pc.addIceCandidate(parsed)
        except (ValueError, *AIORTC_ERRORS) as exc:
            raise SessionError(f"ICE candidate refused: {exc}") from exc

    def push_reading(self, reading: Reading) -> None:
        """Queue a reading for the professional; it is sent now if the channel is open, else on open.

        Raises:
            PrivacyError: this is not a medical call.
        """
        if self._outbox is None:
            raise PrivacyError("readings are only sent in medical appointments")
        _, text = self._outbox.add(reading)
        channel = self._channel
        if channel is not None and channel.readyState == "open":
            channel.send(text)
            self.stats.readings_sent += 1

    def push_device_state(self, state: dict[str, object]) -> None:
        """Tell the professional's page about a device (connected, battery); latest wins, never queued."""
        if self._outbox is None:
            return
        channel = self._channel
        if channel is not None and channel.readyState == "open":
            channel.send(dump_message("device", device=state))
        self._device_states[str(state.get("address", ""))] = state

    def _on_channel_open(self) -> None:
        channel, outbox = self._channel, self._outbox
        if channel is None or outbox is None:
            return
        self._spawn(self._heartbeat(channel))
        for state in self._device_states.values():
            channel.send(dump_message("device", device=state))
        for text in outbox.replay():
            channel.send(text)
            self.stats.readings_sent += 1

    async def _heartbeat(self, channel: RTCDataChannel) -> None:
        text = dump_message("heartbeat")
        while channel.readyState == "open":
            channel.send(text)
            await asyncio.sleep(HEARTBEAT_SECONDS)

    def _on_channel_message(self, data: str | bytes) -> None:
        self.last_inbound = time.monotonic()
        try:
            message = parse_page_message(data)
        except VitalsProtocolError as exc:
            self.stats.bad_vitals_messages += 1
            log.info("%s: ignored a vitals message: %s", self.label, exc)
            return
        outbox, channel = self._outbox, self._channel
        if outbox is None or channel is None:
            return
        if isinstance(message, Ack):
            self.stats.readings_acked += outbox.ack(message.seq)
        elif isinstance(message, PageHello):
            outbox.ack(message.last_seq)
            for text in outbox.replay(after=message.last_seq):
                channel.send(text)
        elif isinstance(message, MeasurementRequest) and self._on_request is not None:
            self._spawn(self._on_request(message.kind))
        elif isinstance(message, ExportRequest):
            # Built on the cabin from memory and sent peer to peer: the bundle never touches a server.
            text = dump_message("bundle", bundle=fhir.bundle(outbox.history, patient_display=None))
            try:
                channel.send(text)
            except ValueError as exc:
                # Larger than the page accepts (its max-message-size, 256 KiB in Chromium: ~290 readings). Raised
                # here it would end aiortc's DTLS loop, and with it the whole call; the page keeps its last bundle.
                log.warning("%s: FHIR bundle not sent: %s", self.label, exc)

    def _on_encoded_screen(self, mime_type: str, clock_rate: int, data: bytes, timestamp: int) -> None:
        self._screen_frame.set()
        if self.remote_screen is not None:
            self.remote_screen.feed(mime_type, clock_rate, data, timestamp)
        if not self.screen_sharing and not self._closed:
            self.screen_sharing = True
            log.info("%s: the professional shares their screen", self.label)
            self._spawn(self._watch_screen())
            if self._on_screen_share is not None:
                self._on_screen_share(True)

    async def _watch_screen(self) -> None:
        """The share is over when frames stop coming (the professional stopped it, or their page went)."""
        while True:
            self._screen_frame.clear()
            try:
                async with asyncio.timeout(SCREEN_IDLE_SECONDS):
                    await self._screen_frame.wait()
            except TimeoutError:
                break
        self.screen_sharing = False
        log.info("%s: the professional stopped sharing their screen", self.label)
        if self._on_screen_share is not None and not self._closed:
            self._on_screen_share(False)

    def subscribe_screen(self) -> MediaStreamTrack | None:
        """Another consumer of the professional's shared screen, still encoded (None without a cabin screen)."""
        if self.remote_screen is None or self._closed:
            return None
        return self.remote_screen.subscribe()

    def _on_encoded_video(self, mime_type: str, clock_rate: int, data: bytes, timestamp: int) -> None:
        self.last_inbound = time.monotonic()
        self.stats.video_frames_received += 1
        if self.remote_video is not None:
            self.remote_video.feed(mime_type, clock_rate, data, timestamp)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video" and self.remote_video is not None:
            return  # tapped before decoding: this track never carries a frame (see remote_video)
        relay = TrackRelay(track, label=f"{self.label} remote {track.kind}")
        self.remote[track.kind] = relay
        self._spawn(self._consume(relay.subscribe(keep=8)))

    def subscribe_remote(self, kind: str, *, keep: int = 1) -> MediaStreamTrack | None:
        """Another consumer of the professional's `kind` track (None until it arrives, or if they send none).

        Video comes still encoded (an EncodedTrack of `av.Packet`s, whose codec is `remote_video.mime_type`) when
        the receiver could be tapped, decoded frames otherwise.
        """
        if kind == "video" and self.remote_video is not None:
            transceiver = self._video_transceiver
            receiving = transceiver is not None and transceiver.currentDirection in ("sendrecv", "recvonly")
            return self.remote_video.subscribe() if receiving and not self._closed else None
        if kind == "audio" and self.remote_audio is not None and "audio" in self.remote:
            return None if self._closed else self.remote_audio.subscribe()
        relay = self.remote.get(kind)
        return None if relay is None or self._closed else relay.subscribe(keep=keep)

    def subscribe_self_view(self) -> MediaStreamTrack | None:
        """The cabin's camera for the citizen's own image (needs self_view=True): half its size, at most 15 fps.

        The screen shows it in a corner (a quarter of its width): a full-size copy would cost a second full encode
        for pixels nobody sees.
        """
        relay = self._local_video
        if relay is None or self._closed:
            return None
        fmt = self._sources.format
        small = VideoLevel(max(2, fmt.width // 4 * 2), max(2, fmt.height // 4 * 2), min(fmt.fps, SELF_VIEW_FPS))
        full = VideoLevel(fmt.width, fmt.height, fmt.fps)
        if small.pixel_rate >= full.pixel_rate:
            return relay.subscribe(keep=1)
        track = AdaptiveVideoTrack(relay.subscribe(keep=1), VideoLadder((full, small)))
        track.set_level(small)
        return track

    async def take_photo(self) -> bytes:
        """A still of the cabin's camera at its full size, as JPEG (a document the citizen holds up to it).

        Raises:
            PhotoError: no camera, the camera is unavailable (its card is being sent), or no frame in time.
        """
        relay, video = self._local_video, self._sources.video
        if relay is None or video is None or self._closed:
            raise PhotoError("this call has no camera")
        if getattr(video, "available", True) is False:
            raise PhotoError("the camera is unavailable")
        return await take_photo(relay.subscribe(keep=1))

    def _far_end(self, frame: object) -> None:
        """The professional's voice, as the cabin's loudspeaker plays it: the echo canceller's reference."""
        if not isinstance(frame, AudioFrame):
            return
        self._sources.played(frame)
        if self.voice is not None:
            self.voice.far_end(frame)

    async def _consume(self, track: MediaStreamTrack) -> None:
        # Remote tracks must be drained, or decoded frames pile up in memory.
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.last_inbound = time.monotonic()
            if track.kind == "video":
                self.stats.video_frames_received += 1
            else:
                self.stats.audio_frames_received += 1
                self._far_end(frame)

    async def _on_state(self) -> None:
        state = self._pc.connectionState
        log.info("%s: connection %s", self.label, state)
        if state == "connected":
            if self.connected_at is None:
                self.connected_at = self.last_inbound = time.monotonic()
            self.connected.set()
        elif state in ("failed", "closed"):
            self.ended.set()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Close the peer connection and release the camera and microphone; idempotent, and finished even if the
        caller is cancelled meanwhile (a half-closed peer connection would keep its sockets for good)."""
        if self._closed:
            return
        self._closed = True
        closing = asyncio.ensure_future(self._release())
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            # aiortc's close() must not be cut short: it awaits a future of its own that a cancellation would cancel.
            await closing
            raise

    async def _release(self) -> None:
        if self._adaptation is not None:
            await self._adaptation.close()
        await self._pc.close()
        await self._sources.close()
        for relay in [*self.remote.values(), *([self._local_video] if self._local_video else [])]:
            await relay.close()
        for encoded in (self.remote_video, self.remote_audio, self.remote_screen):
            if encoded is not None:
                await encoded.close()
        await cancel_and_wait(list(self._tasks))
        self.ended.set()
