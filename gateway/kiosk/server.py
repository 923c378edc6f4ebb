"""The cabin screen's local server: the kiosk page, its WebSocket `/kiosk/ws`, and the loopback media.

Served on 127.0.0.1 only, to the kiosk Chromium of the same PC (plain HTTP: http://127.0.0.1 is a secure context).
Every request must come from loopback with a loopback Host header, and the WebSocket needs this server's own
Origin, so neither another machine nor a web page in the browser (DNS rebinding) can drive the cabin.

Page -> server: {"type": "start"} (check in to the open appointment), {"type": "end"} (check out: ends the call,
forgets the readings), {"type": "help"}, {"type": "language", "lang": "en"}, {"type": "dismiss"} (leave the ended
screen), {"type": "answer", "sdp": "..."} (for the loopback media).
Server -> page: {"type": "screen", ...} (see gateway.kiosk.screen), {"type": "offer", "sdp": "...", "mids": {...}},
{"type": "media-end"}, {"type": "error", "message": "..."}.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from aiohttp import WSMsgType, web
from aiohttp.typedefs import Handler
from aiortc import MediaStreamTrack

from gateway.cabin import CabinGateway
from gateway.documents.desk import SOURCES, NoRequest
from gateway.documents.render import RenderError, render_page
from gateway.errors import ConfigError, GatewayError
from gateway.kiosk.loopback import LoopbackError, LoopbackMedia
from gateway.kiosk.screen import (
    DEFAULT_LANGUAGE,
    CallPhase,
    Ending,
    Paper,
    Screen,
    ScreenState,
    choose_focus,
    compute_screen,
    help_phase,
    valid_language,
)
from gateway.lifecycle import AsyncResource, cancel_and_wait
from gateway.session import CallSession
from signaling.protocol import AppointmentInfo
from webclient import WEBCLIENT_DIR

log = logging.getLogger("cabine.gateway.kiosk")
# Pages of the call's documents kept drawn in memory for the screen (each a few hundred KB).
PAGES_KEPT: Final = 8

DEFAULT_PORT: Final = 8088
MAX_MESSAGE_BYTES: Final = 64 * 1024
# With nothing happening, the screen is recomputed this often (an appointment's window opens with time).
IDLE_REFRESH: Final = 15.0
CLOSE_PROTOCOL: Final = 4400
CLOSE_REPLACED: Final = 4409

HEADERS: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'none'"
    ),
    # The page itself needs neither camera nor microphone: the gateway owns them.
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


class KioskProtocolError(GatewayError, ValueError):
    """A message from the page that the server does not accept."""


def _is_loopback(address: str | None) -> bool:
    if not address:
        return False
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class KioskServer(AsyncResource):
    """Serves the cabin screen for `gateway`; an async context manager whose close() is idempotent."""

    def __init__(
        self,
        gateway: CabinGateway,
        *,
        port: int = DEFAULT_PORT,
        host: str = "127.0.0.1",
        webclient_dir: Path = WEBCLIENT_DIR,
        ended_seconds: float = 20.0,
        clock: Callable[[], datetime] | None = None,
        languages: tuple[str, ...] = (DEFAULT_LANGUAGE, "en"),
        sock: socket.socket | None = None,
    ) -> None:
        """`sock`, if given, is an already bound listening socket (bound before anything else changed).

        Raises:
            ConfigError: `host` is not a loopback address, or no valid language.
        """
        if not _is_loopback(host):
            raise ConfigError(f"the cabin screen is served on loopback only, not on {host!r}")
        if not languages or not all(valid_language(code) for code in languages):
            raise ConfigError(f"the cabin screen needs language codes such as 'fr', got {languages!r}")
        self.languages = languages
        self._sock = sock
        self.gateway = gateway
        self.host = host
        self.port = port
        self.label = f"{gateway.label} screen"
        self._webclient = webclient_dir
        self._ended_seconds = ended_seconds
        self._clock = clock or (lambda: datetime.now(UTC))
        self.lang = languages[0]
        self.screen: Screen | None = None
        self.screens_sent = 0
        self._focus: str | None = None
        self._focus_info: AppointmentInfo | None = None
        self._had_call = False
        self._ending: Ending | None = None
        self._ending_until = 0.0
        self._client: web.WebSocketResponse | None = None
        self._media: LoopbackMedia | None = None
        self._media_key: tuple[str, int] | None = None
        self._media_lock = asyncio.Lock()
        self._media_stale = False  # the page changed: its media must be offered again
        self._offers = 0
        self._wake = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._prints: set[asyncio.Task[None]] = set()
        # Pages drawn for the screen, the latest few (memory only; forgotten with the documents).
        self._pages: collections.OrderedDict[tuple[str, int], bytes] = collections.OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    # --- lifetime --------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def set_languages(self, languages: tuple[str, ...]) -> None:
        """Offer these languages from now on (a configuration from afar); the screen follows at once.

        Raises:
            ConfigError: no valid language.
        """
        if not languages or not all(valid_language(code) for code in languages):
            raise ConfigError(f"the cabin screen needs language codes such as 'fr', got {languages!r}")
        self.languages = languages
        if self.lang not in languages:
            self.lang = languages[0]
        self._wake.set()

    async def __aenter__(self) -> KioskServer:
        """Raises: OSError: the port cannot be bound."""
        app = web.Application(middlewares=[self._local_only], client_max_size=MAX_MESSAGE_BYTES)
        app.router.add_get("/", self._index)
        app.router.add_get("/kiosk/ws", self._websocket)
        app.router.add_get("/documents/{id}/{page}.png", self._document_page)
        app.router.add_get("/captures/{id}/{shot}", self._capture)
        app.router.add_static("/static/cabin/", self._webclient / "cabin", follow_symlinks=False)
        app.router.add_static("/static/shared/", self._webclient / "shared", follow_symlinks=False)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        try:
            site: web.BaseSite
            if self._sock is not None:
                site = web.SockSite(self._runner, self._sock)
            else:
                site = web.TCPSite(self._runner, self.host, self.port)
            await site.start()
            self.port = int(self._runner.addresses[0][1])
            self._tasks.append(asyncio.create_task(self._watch(), name="kiosk-watch"))
        except BaseException:
            await self.close()
            raise
        log.info("%s: serving %s", self.label, self.url)
        return self

    async def close(self) -> None:
        """Stop watching, close the media and the page's WebSocket, stop listening; idempotent."""
        if self._closed:
            return
        self._closed = True
        await cancel_and_wait([*self._tasks, *self._prints])
        self._pages.clear()
        await self._close_media(tell_page=False)
        client, self._client = self._client, None
        if client is not None and not client.closed:
            await client.close(code=1001, message=b"the cabin screen server is stopping")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- HTTP ------------------------------------------------------------------------------------------------

    def _allowed_hosts(self) -> set[str]:
        return {f"127.0.0.1:{self.port}", f"localhost:{self.port}", f"[::1]:{self.port}"}

    @web.middleware
    async def _local_only(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not _is_loopback(request.remote):
            log.warning("%s: refused a request from %s", self.label, request.remote)
            raise web.HTTPForbidden(text="The cabin screen is served to this PC only.")
        if request.headers.get("Host", "") not in self._allowed_hosts():
            log.warning("%s: refused a request for another host name", self.label)
            raise web.HTTPForbidden(text="Unexpected Host header: open http://127.0.0.1 on this PC.")
        response = await handler(request)
        if not isinstance(response, web.WebSocketResponse):
            response.headers.update(HEADERS)
        return response

    async def _index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(self._webclient / "cabin" / "index.html")

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        origin = request.headers.get("Origin", "")
        if origin not in {f"http://{host}" for host in self._allowed_hosts()}:
            log.warning("%s: refused a WebSocket from origin %.80s", self.label, origin or "(none)")
            raise web.HTTPForbidden(text="The cabin screen's WebSocket is for its own page only.")
        ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=MAX_MESSAGE_BYTES)
        await ws.prepare(request)
        previous, self._client = self._client, ws
        if previous is not None and not previous.closed:
            await previous.close(code=CLOSE_REPLACED, message=b"replaced by a newer cabin screen")
        # The new page gets its own media: the previous page's connection is closed by the watcher.
        self._media_stale = True
        log.info("%s: page connected", self.label)
        if self.screen is not None:
            await self._send(self.screen.to_json())
        self._wake.set()
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    await ws.close(code=CLOSE_PROTOCOL, message=b"expected a text message")
                    break
                try:
                    await self._on_message(msg.data)
                except KioskProtocolError as exc:
                    log.info("%s: refused a message: %s", self.label, exc)
                    await ws.close(code=CLOSE_PROTOCOL, message=str(exc).encode()[:123])
                    break
        finally:
            if self._client is ws:
                self._client = None
                self._media_stale = True
                self._wake.set()
            log.info("%s: page disconnected", self.label)
        return ws

    async def _send(self, message: dict[str, Any]) -> None:
        ws = self._client
        if ws is None or ws.closed:
            return
        with contextlib.suppress(ConnectionError):
            await ws.send_str(json.dumps(message, separators=(",", ":")))

    # --- the citizen's actions -------------------------------------------------------------------------------

    async def _on_message(self, text: str) -> None:
        """Raises: KioskProtocolError: not a JSON object with a known type and valid fields."""
        try:
            message = json.loads(text)
        except ValueError:
            raise KioskProtocolError("message is not JSON") from None
        if not isinstance(message, dict):
            raise KioskProtocolError("message must be a JSON object")
        kind = message.get("type")
        if kind == "start":
            await self.start(message.get("appointment_id"))
        elif kind == "end":
            await self.end()
        elif kind == "help":
            await self.call_for_help()
        elif kind == "language":
            lang = message.get("lang")
            if lang not in self.languages:  # validated when the server was made
                raise KioskProtocolError(f"'lang' must be one of this cabin's languages: {', '.join(self.languages)}")
            self.lang = str(lang)
        elif kind == "dismiss":
            self._ending = None
        elif kind == "print":
            document_id = message.get("id")
            if not isinstance(document_id, str) or self._focus is None:
                raise KioskProtocolError("'print' needs the 'id' of a document of the call")
            self._print(self._focus, document_id)
        elif kind in ("capture", "send-capture", "retake", "decline"):
            self._answer_request(str(kind), message)
        elif kind == "answer":
            sdp, offer = message.get("sdp"), message.get("offer")
            if not isinstance(sdp, str) or not sdp.startswith("v=0") or not isinstance(offer, int):
                raise KioskProtocolError("'answer' needs an 'sdp' string and the 'offer' number it answers")
            await self._accept_answer(offer, sdp)
        else:
            raise KioskProtocolError(f"unknown message type {str(kind)[:32]!r}")
        self._wake.set()

    @property
    def pages_kept(self) -> int:
        """Pages of the call's documents drawn and kept in memory (0 once they are forgotten)."""
        return len(self._pages)

    def _print(self, appointment_id: str, document_id: str) -> None:
        """The citizen pressed "Imprimer": print in the background; the screen follows the document's state."""
        self._background(self.gateway.print_document(appointment_id, document_id), "print")

    def _answer_request(self, kind: str, message: dict[str, Any]) -> None:
        """The citizen answers the professional's request for a document: capture (with the scanner or the camera),
        send what they see, start again, or say they do not have it. Runs in the background; the screen follows.

        Raises:
            KioskProtocolError: no appointment, or a capture with no valid source.
        """
        focus, desk = self._focus, self.gateway.desk
        if focus is None:
            raise KioskProtocolError(f"'{kind}' needs an appointment in progress")
        if kind == "capture":
            source = message.get("source")
            if source not in SOURCES:
                raise KioskProtocolError(f"'capture' needs a 'source': {' or '.join(SOURCES)}")
            self._background(desk.capture(focus, str(source)), kind)
        elif kind == "send-capture":
            self._background(desk.send_capture(focus), kind)
        else:
            try:
                (desk.retake if kind == "retake" else desk.decline)(focus)
            except NoRequest as exc:
                log.info("%s: %s: %s", self.label, kind, exc)

    def _background(self, work: Coroutine[Any, Any, object], what: str) -> None:
        """Run a citizen's action that takes time (printing, scanning, sending); its failures are on the screens."""

        async def run() -> None:
            try:
                await work
            except (GatewayError, KeyError) as exc:
                log.info("%s: %s: %s", self.label, what, exc)

        task = asyncio.create_task(run(), name=f"kiosk-{what}")
        self._prints.add(task)
        task.add_done_callback(self._prints.discard)

    async def _capture(self, request: web.Request) -> web.StreamResponse:
        """GET /captures/{id}/{shot}: the image the citizen took for the professional, until it is sent."""
        focus = self._focus
        held = None if focus is None else self.gateway.documents.get(focus)
        asked = None if held is None else held.request
        shot = request.match_info["shot"]
        if asked is None or asked.id != request.match_info["id"] or asked.image is None or shot != str(asked.shots):
            raise web.HTTPNotFound(text="no such image")
        return web.Response(body=asked.image, content_type=asked.mime, headers={"Cache-Control": "no-store"})

    async def _document_page(self, request: web.Request) -> web.StreamResponse:
        """GET /documents/{id}/{page}.png: a page of a document of the call in progress, drawn in memory."""
        focus = self._focus
        held = None if focus is None else self.gateway.documents.get(focus)
        found = None if held is None else held.get(request.match_info["id"])
        try:
            page = int(request.match_info["page"])
        except ValueError:
            page = 0
        if found is None or not 1 <= page <= found.checked.pages:
            raise web.HTTPNotFound(text="no such page")
        headers = {"Cache-Control": "no-store"}
        if found.checked.kind == "image":
            return web.Response(body=found.document.data, content_type=found.document.mime, headers=headers)
        key = (found.document.id, page)
        image = self._pages.get(key)
        if image is None:
            try:
                image = await render_page(found.document.data, page)
            except RenderError as exc:
                log.warning("%s: %s", self.label, exc)
                raise web.HTTPUnprocessableEntity(text=str(exc)) from None
            self._pages[key] = image
            while len(self._pages) > PAGES_KEPT:
                self._pages.popitem(last=False)
        return web.Response(body=image, content_type="image/png", headers=headers)

    async def start(self, appointment_id: object = None) -> bool:
        """The citizen presses "start": check in to the open appointment; returns whether one was open."""
        available = self.gateway.open_appointments(self._clock())
        chosen = next((a for a in available if a.id == appointment_id), available[0] if available else None)
        if chosen is None:
            await self._send({"type": "error", "message": "no appointment is open now"})
            return False
        self._ending = None
        self._focus, self._focus_info, self._had_call = chosen.id, chosen, False
        log.info("%s: the citizen starts apt %s", self.label, chosen.id[:12])
        await self.gateway.check_in(chosen.id)
        return True

    async def end(self) -> None:
        """The citizen presses "end": the call ends and the appointment's readings are forgotten."""
        if self._focus is not None:
            log.info("%s: the citizen ends apt %s", self.label, self._focus[:12])
            await self.gateway.check_out(self._focus)

    async def call_for_help(self) -> None:
        await self.gateway.request_help(self._focus)

    async def _accept_answer(self, offer: int, sdp: str) -> None:
        async with self._media_lock:
            media = self._media
            if media is None or offer != self._offers:
                return  # the answer to an offer that is already gone
            try:
                await media.accept_answer(sdp)
            except LoopbackError as exc:
                log.warning("%s: %s", self.label, exc)
                await self._send({"type": "error", "message": str(exc)})

    # --- keeping the screen current --------------------------------------------------------------------------

    def _session(self) -> CallSession | None:
        return None if self._focus is None else self.gateway.sessions.get(self._focus)

    async def _update_focus(self) -> None:
        gw = self.gateway
        if self._ending is not None and time.monotonic() >= self._ending_until:
            self._ending = None
        if self._ending is None and self.screen is not None and self.screen.state is ScreenState.ENDED:
            self.lang = self.languages[0]  # the next citizen starts in the cabin's first language
        focus = choose_focus(self._focus, frozenset(gw.checked_in), gw.schedule)
        previous = self._focus
        if previous is not None and focus != previous:
            self._begin_ending(gw.ended.get(previous, "gone"))
        elif previous is not None and gw.ended.get(previous) in ("professional", "cancelled"):
            # The professional ended the appointment (or it was cancelled): the citizen is done here.
            self._begin_ending(gw.ended[previous])
            await gw.check_out(previous)
            focus = choose_focus(None, frozenset(gw.checked_in), gw.schedule)
        if focus != self._focus:
            self._focus, self._had_call = focus, False
            self._focus_info = next((a for a in gw.schedule if a.id == focus), None)

    def _begin_ending(self, reason: str) -> None:
        log.info("%s: appointment over (%s)", self.label, reason)
        self._ending = Ending(self._focus_info, reason)
        self._ending_until = time.monotonic() + self._ended_seconds

    def _compute(self) -> Screen:
        gw = self.gateway
        session = self._session()
        phase: CallPhase | None = None
        if session is not None:
            if session.ended.is_set():
                phase = CallPhase.FAILED
            elif session.connected.is_set():
                phase = CallPhase.CONNECTED
            else:
                phase = CallPhase.CONNECTING
        if phase is CallPhase.CONNECTED:
            self._had_call = True
        focus = self._focus
        prompt = gw.prompt
        screen = compute_screen(
            now=self._clock(),
            lang=self.lang,
            signaling_up=gw.connected.is_set(),
            schedule=gw.schedule,
            focus=focus,
            room=None if focus is None else gw.room_states.get(focus),
            call=phase,
            had_call=self._had_call,
            ending=self._ending,
            prompt_kind=prompt.kind if prompt is not None and prompt.appointment_id == focus else None,
            reading=None if focus is None else gw.latest_reading.get(focus),
            help=help_phase(gw.help is not None, gw.help is not None and gw.help.alert_id is not None),
        )
        in_call = screen.state is ScreenState.IN_CALL
        sharing = in_call and session is not None and session.screen_sharing
        held = gw.documents.get(focus) if in_call and focus is not None else None
        documents = () if held is None else tuple(held.view(item) for item in held.all())
        if held is None:
            self._pages.clear()
        asked = None if held is None else held.request
        printer, scanner = gw.desk.printer, gw.desk.scanner
        return dataclasses.replace(
            screen,
            languages=self.languages,
            sharing=sharing,
            documents=documents,
            can_print=printer is not None,
            request=None if asked is None else asked.view(),
            paper=Paper(
                can_scan=scanner is not None,
                test_printer=printer is not None and bool(printer.test_tray),
                test_scanner=scanner is not None and scanner.test,
                tray=printer.test_tray if printer is not None else "",
            ),
        )

    async def _watch(self) -> None:
        while True:
            changed = self.gateway.changed  # taken before reading the state: no change can slip between
            self._wake.clear()
            await self._update_focus()
            screen = self._compute()
            if screen != self.screen:
                self.screen = screen
                self.screens_sent += 1
                await self._send(screen.to_json())
            await self._sync_media(screen)
            await self._wait(changed)

    async def _wait(self, changed: asyncio.Event) -> None:
        waits = [changed.wait(), self._wake.wait()]
        session = self._session()
        if session is not None:
            # Only the events still to come: a set one returns at once, and the loop would spin (it did: a fifth of
            # a core for the whole call).
            waits += [event.wait() for event in (session.connected, session.ended) if not event.is_set()]
        timeout = IDLE_REFRESH
        if self._ending is not None:
            timeout = max(0.0, min(timeout, self._ending_until - time.monotonic()))
        tasks = [asyncio.ensure_future(w) for w in waits]
        try:
            await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            # Not suppress(CancelledError): that would also swallow a cancellation of this task arriving here.
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- loopback media --------------------------------------------------------------------------------------

    async def _sync_media(self, screen: Screen) -> None:
        async with self._media_lock:
            await self._sync_media_locked(screen)

    async def _sync_media_locked(self, screen: Screen) -> None:
        if self._media_stale:
            self._media_stale = False
            await self._close_media(tell_page=False)
        session = self._session()
        want = None
        if screen.state is ScreenState.IN_CALL and session is not None and self._client is not None:
            want = (session.appointment_id, id(session))
        if want == self._media_key:
            return
        await self._close_media(tell_page=True)
        if want is None or session is None:
            return
        self._media_key = want
        tracks: dict[str, MediaStreamTrack] = {}
        for name, track in (
            ("professional_audio", session.subscribe_remote("audio", keep=10)),
            ("professional_video", session.subscribe_remote("video", keep=1)),
            ("self_video", session.subscribe_self_view()),
            ("professional_screen", session.subscribe_screen()),
        ):
            if track is not None:
                tracks[name] = track
        media = LoopbackMedia(tracks, label=f"{self.label} media")
        self._media = media
        try:
            sdp = await media.create_offer()
        except LoopbackError as exc:
            log.error("%s: %s", self.label, exc)
            await self._close_media(tell_page=False, keep_key=True)
            return
        self._offers += 1
        log.info("%s: offering the call's media to the page (%s)", self.label, ", ".join(sorted(tracks)))
        await self._send({"type": "offer", "offer": self._offers, "sdp": sdp, "mids": media.mids})

    async def _close_media(self, *, tell_page: bool, keep_key: bool = False) -> None:
        media, self._media = self._media, None
        if not keep_key:
            self._media_key = None
        if media is not None:
            await media.close()
            if tell_page:
                await self._send({"type": "media-end"})
