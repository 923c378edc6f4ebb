"""Documents over a real call (issue 13): an energy adviser's aiortc peer sends a PDF on the `documents` channel,
the only data channel of a non-medical call; the cabin checks it and holds it in memory, refuses a bad one with the
reason, never lets a reading through, and forgets everything when the appointment ends."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pypdf
import pytest
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from gateway.app import Cabin
from gateway.config import ScreenSettings
from gateway.documents.check import check_document
from gateway.documents.desk import NoRequest
from gateway.documents.photo import PhotoError
from gateway.documents.printer import PrintError
from gateway.documents.scanner import SaneScanner, ScanError, ScanProblem
from gateway.documents.transfer import CHUNK_BYTES
from gateway.session import rtc_configuration
from signaling.protocol import dump
from tests.conftest import free_port, need_tool, wait_until
from tests.cups import PrivateCups
from tests.gateway.test_cabin_loop import loopback_only
from tests.paper import blank_pdf
from tests.signaling.conftest import World, receive_until, server_options, world

__all__ = ["loopback_only", "server_options", "world"]  # fixtures, imported to be used here

pytestmark = pytest.mark.timeout(60)


class Adviser:
    """The adviser's console over aiortc: answers, keeps the channels, sends documents, collects statuses."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(rtc_configuration(()))
        self.channels: dict[str, RTCDataChannel] = {}
        self.statuses: list[dict[str, Any]] = []
        # The documents the cabin sent back (announcement, then bytes), and the cabin's words on each request.
        self.incoming: list[tuple[dict[str, Any], bytearray]] = []
        self.requests: list[dict[str, Any]] = []
        self.answered = asyncio.Event()
        self.opened = asyncio.Event()
        self.pro: Any = None  # its signaling socket
        self.pc.on("datachannel", self._on_channel)

    def _on_channel(self, channel: RTCDataChannel) -> None:
        self.channels[channel.label] = channel
        channel.on("message", self._on_message)
        self.opened.set()

    def _on_message(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            self.incoming[-1][1].extend(data)
            return
        message = json.loads(data)
        kind = message["type"]
        if kind == "document":
            self.incoming.append((message, bytearray()))
        elif kind == "request-status":
            self.requests.append(message)
        elif kind == "document-status":
            self.statuses.append(message)
        self.answered.set()

    def ask(self, request_id: str, label: str) -> None:
        message = {"v": 1, "type": "document-request", "id": request_id, "label": label}
        self.channels["documents"].send(json.dumps(message))

    async def request_state(self, request_id: str, state: str) -> dict[str, Any]:
        """Waits up to 10 s for the cabin to say this request reached `state`."""
        async with asyncio.timeout(10):
            while not (found := [r for r in self.requests if r["id"] == request_id and r["state"] == state]):
                self.answered.clear()
                await self.answered.wait()
        return found[-1]

    async def answer(self, sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    def send(self, document_id: str, name: str, mime: str, data: bytes) -> None:
        channel = self.channels["documents"]
        digest = hashlib.sha256(data).hexdigest()
        announce = {"v": 1, "type": "document", "id": document_id, "name": name, "mime": mime}
        channel.send(json.dumps({**announce, "size": len(data), "sha256": digest}))
        for at in range(0, len(data), CHUNK_BYTES):
            channel.send(data[at : at + CHUNK_BYTES])
        channel.send(json.dumps({"v": 1, "type": "document-end", "id": document_id}))

    async def status(self, document_id: str) -> dict[str, Any]:
        """The cabin's latest word on this document (waits up to 10 s for one)."""
        async with asyncio.timeout(10):
            while not (found := [s for s in self.statuses if s["id"] == document_id]):
                self.answered.clear()
                await self.answered.wait()
        return found[-1]


@pytest.fixture
async def cabin(world: World) -> AsyncIterator[Cabin]:
    # cabin-2, with a screen: its energy appointment is open now.
    async with Cabin(world.cabin_config("cabin-2"), screen=ScreenSettings(port=free_port())) as running:
        await asyncio.wait_for(running.gateway.connected.wait(), timeout=10)
        yield running


async def test_a_pdf_reaches_the_cabin_and_is_forgotten_with_the_appointment(world: World, cabin: Cabin) -> None:
    gateway = cabin.gateway
    adviser = await a_call(world, cabin)
    assert list(adviser.channels) == ["documents"], "no vitals channel in an energy appointment"
    offer = gateway.sessions["apt_other"]._pc.localDescription.sdp
    assert offer.count("m=application") == 1

    three = blank_pdf(3) + b"%" + bytes(150_000)  # several chunks
    adviser.send("doc_1", "Contrat.pdf", "application/pdf", three)
    assert (await adviser.status("doc_1"))["state"] == "received"
    held = gateway.documents["apt_other"].get("doc_1")
    assert held is not None and held.checked.pages == 3 and held.document.data == three

    adviser.send("doc_2", "facture.pdf", "application/pdf", b"MZ\x90\x00 not a pdf")
    refused = await adviser.status("doc_2")
    assert (refused["state"], refused["reason"]) == ("refused", "the file is not a PDF")
    assert gateway.documents["apt_other"].get("doc_2") is None
    # A reading has nowhere to go in this call.
    assert gateway.medical_link() is None

    await adviser.pro.send_str(json.dumps({"type": "bye", "appointment_id": "apt_other"}))
    await wait_until(lambda: "apt_other" not in gateway.documents, timeout=10, what="the documents forgotten")
    await adviser.pc.close()


async def test_the_citizen_prints_it_and_both_ends_hear_how_it_went(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with PrivateCups() as cups:
        monkeypatch.setenv("CUPS_SERVER", cups.server)
        config = world.cabin_config("cabin-2", printer_queue=cups.queue)
        async with Cabin(config, screen=ScreenSettings(port=free_port())) as cabin:
            gateway = cabin.gateway
            await asyncio.wait_for(gateway.connected.wait(), timeout=10)
            adviser = await a_call(world, cabin)
            adviser.send("doc_1", "Échéancier.pdf", "application/pdf", blank_pdf(3))
            assert (await adviser.status("doc_1"))["state"] == "received"

            printed = await gateway.print_document("apt_other", "doc_1")
            (output,) = cups.printed()
            assert len(pypdf.PdfReader(output).pages) == 3
            await wait_until(
                lambda: [s["state"] for s in adviser.statuses if s["id"] == "doc_1"][-1] == "printed",
                timeout=10,
                what="the console told it is printed",
            )
            states = [s["state"] for s in adviser.statuses if s["id"] == "doc_1"]
            assert states == ["received", "printing", "printed"]
            assert gateway.documents["apt_other"].states["doc_1"][0].value == "printed"
            assert cups.spooled() == [] and printed.seconds > 0

            # The printer is out of paper: both ends are told, the call goes on.
            await cups.run("cupsdisable", "-r", "out of paper", cups.queue)
            with pytest.raises(PrintError):
                await gateway.print_document("apt_other", "doc_1")
            await wait_until(
                lambda: adviser.statuses[-1]["state"] == "print-failed", timeout=10, what="the failure told"
            )
            assert adviser.statuses[-1]["reason"] == "stopped"
            assert gateway.sessions["apt_other"].connection_state == "connected"
            await adviser.pc.close()


async def a_call(world: World, cabin: Cabin) -> Adviser:
    """cabin-2's energy appointment: checked in, admitted, answered; the documents channel open."""
    await cabin.gateway.check_in("apt_other")
    pro = await world.professional(world.other)
    while not (await receive_until(pro, "room"))["citizen_present"]:
        pass  # the citizen's check-in has not reached signaling yet
    await pro.send_str(json.dumps({"type": "admit", "appointment_id": "apt_other"}))
    offer = await receive_until(pro, "offer")
    adviser = Adviser()
    adviser.pro = pro
    answer = await adviser.answer(offer["sdp"])
    await pro.send_str(json.dumps({"type": "answer", "appointment_id": "apt_other", "sdp": answer}))
    await asyncio.wait_for(adviser.opened.wait(), timeout=15)
    await wait_until(lambda: adviser.channels["documents"].readyState == "open", timeout=10, what="the channel")
    return adviser


def files_holding(folder: Path, needles: tuple[bytes, ...]) -> list[Path]:
    """Files under `folder` whose bytes hold any of `needles`."""
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and any(needle in path.read_bytes() for needle in needles):
            found.append(path)
    return found


async def test_nothing_of_a_document_is_kept_after_the_appointment(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The cabin's runtime directory, the signaling server's database, the print queue's spool and cups-pdf's own
    spool hold nothing of a printed document once the appointment is over, nor of a page scanned for the adviser;
    the cabin's memory and its screen's page cache are empty."""
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": "Relevé 4F7Q-XK2M"})
    out = io.BytesIO()
    writer.write(out)
    document = out.getvalue()
    needles = (b"4F7Q-XK2M", hashlib.sha256(document).hexdigest().encode(), b"Releve-4F7Q")
    runtime = tmp_path / "run"
    async with PrivateCups() as cups:
        monkeypatch.setenv("CUPS_SERVER", cups.server)
        config = world.cabin_config("cabin-2", printer_queue=cups.queue, runtime_dir=runtime)
        scanner = sane_test(tmp_path)
        async with Cabin(config, screen=ScreenSettings(port=free_port()), scanner=scanner) as cabin:
            gateway = cabin.gateway
            await asyncio.wait_for(gateway.connected.wait(), timeout=10)
            adviser = await a_call(world, cabin)
            adviser.send("doc_1", "Releve-4F7Q.pdf", "application/pdf", document)
            assert (await adviser.status("doc_1"))["state"] == "received"
            # The cabin screen draws its page (kept in memory for the screen).
            kiosk = cabin.kiosk
            assert kiosk is not None
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{kiosk.port}/documents/doc_1/1.png"
                async with http.get(url) as response:
                    assert response.status == 200 and (await response.read()).startswith(b"\x89PNG")
            assert kiosk.pages_kept == 1
            await gateway.print_document("apt_other", "doc_1")
            assert len(cups.printed()) == 1  # the paper that came out (cups-pdf's output stands for it)

            # A page scanned for the adviser, shown on the cabin screen, then sent.
            adviser.ask("req_1", "Avis d'imposition")
            await adviser.request_state("req_1", "shown")
            await gateway.desk.capture("apt_other", "scanner")
            request = gateway.documents["apt_other"].request
            assert request is not None and request.image is not None
            scan = request.image
            needles += (hashlib.sha256(scan).hexdigest().encode(), scan[len(scan) // 2 : len(scan) // 2 + 48])
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{kiosk.port}/captures/req_1/{request.shots}"
                async with http.get(url) as response:
                    assert response.status == 200 and await response.read() == scan
            await gateway.desk.send_capture("apt_other")
            await adviser.request_state("req_1", "sent")
            await adviser.pro.send_str(json.dumps({"type": "bye", "appointment_id": "apt_other"}))
            await wait_until(lambda: not gateway.documents, timeout=10, what="the documents forgotten")
            await wait_until(lambda: kiosk.pages_kept == 0, timeout=10, what="the drawn pages forgotten")
            await adviser.pc.close()
        # The test's folder holds the cabin's runtime directory and key, SANE's configuration, and the signaling
        # server's database: none has a byte of either document.
        assert runtime.is_dir() and (tmp_path / "signaling.sqlite").exists()
        assert files_holding(tmp_path, needles) == []
        assert cups.spooled() == []
        assert files_holding(cups.spool, needles) == [] and files_holding(cups.root / "cpspool", needles) == []


def sane_test(tmp_path: Path, *options: str) -> SaneScanner:
    """SANE's own test scanner (the `test` backend alone), with its debugging options if given."""
    need_tool("scanimage", "sane-utils")
    config = tmp_path / "sane.d"
    config.mkdir(exist_ok=True)
    (config / "dll.conf").write_text("test\n")
    return SaneScanner("test:0", resolution=75, config_dir=config, options=("--test-picture=Grid", *options))


async def test_a_document_asked_is_scanned_shown_confirmed_and_received(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The adviser asks; nothing leaves until the citizen confirms; what arrives is exactly the page scanned, and
    the cabin keeps nothing of it once sent. What was asked for is in no log line and no heartbeat."""
    caplog.set_level(logging.DEBUG)
    config = world.cabin_config("cabin-2")
    scanner = sane_test(tmp_path)
    async with Cabin(config, screen=ScreenSettings(port=free_port()), scanner=scanner) as cabin:
        gateway, desk = cabin.gateway, cabin.gateway.desk
        await asyncio.wait_for(gateway.connected.wait(), timeout=10)
        adviser = await a_call(world, cabin)
        adviser.ask("req_1", "Justificatif de domicile")
        await adviser.request_state("req_1", "shown")
        request = gateway.documents["apt_other"].request
        assert request is not None and request.label == "Justificatif de domicile"

        await desk.capture("apt_other", "scanner")
        await adviser.request_state("req_1", "captured")
        assert request.image is not None and adviser.incoming == [], "nothing leaves before the citizen confirms"
        scanned = request.image
        assert check_document(scanned, "image/png").width == 236

        document_id = await desk.send_capture("apt_other")
        await adviser.request_state("req_1", "sent")
        ((announced, body),) = adviser.incoming
        assert announced["id"] == document_id and announced["request"] == "req_1"
        assert announced["name"] == "Justificatif de domicile.png" and announced["mime"] == "image/png"
        assert bytes(body) == scanned and hashlib.sha256(body).hexdigest() == announced["sha256"]
        assert request.image is None, "forgotten once sent"
        status = {"v": 1, "type": "document-status", "id": document_id, "state": "received", "reason": ""}
        adviser.channels["documents"].send(json.dumps(status))
        await wait_until(lambda: request.received, timeout=10, what="the console's acknowledgement")

        # A press arriving late (the request is done) is refused plainly, and changes nothing.
        with pytest.raises(NoRequest):
            await desk.send_capture("apt_other")
        states = [r["state"] for r in adviser.requests if r["id"] == "req_1"]
        assert states == ["shown", "capturing", "captured", "sending", "sent"]
        heartbeat = dump(gateway.heartbeats.heartbeat())
        for secret in ("Justificatif", "domicile", hashlib.sha256(scanned).hexdigest()):
            assert secret not in caplog.text and secret not in heartbeat
        await adviser.pc.close()


async def test_a_scanner_that_fails_or_is_missing_is_said_and_the_camera_still_works(
    world: World, tmp_path: Path
) -> None:
    """A jam mid-scan, then no scanner at all: the adviser and the screen are told why, the call goes on, and the
    citizen photographs the page with the cabin's camera instead; a request withdrawn drops its image."""
    jamming = sane_test(tmp_path, "--read-return-value=SANE_STATUS_JAMMED")
    config = world.cabin_config("cabin-2")
    async with Cabin(config, screen=ScreenSettings(port=free_port()), scanner=jamming) as cabin:
        gateway, desk = cabin.gateway, cabin.gateway.desk
        await asyncio.wait_for(gateway.connected.wait(), timeout=10)
        adviser = await a_call(world, cabin)
        adviser.ask("req_1", "Bulletin de salaire")
        await adviser.request_state("req_1", "shown")
        with pytest.raises(ScanError) as jammed:
            await desk.capture("apt_other", "scanner")
        assert jammed.value.problem is ScanProblem.FAILED and "jammed" in jammed.value.detail
        failed = await adviser.request_state("req_1", "failed")
        assert failed["reason"] == "failed"

        desk.scanner = None  # unplugged
        with pytest.raises(ScanError) as missing:
            await desk.capture("apt_other", "scanner")
        assert missing.value.problem is ScanProblem.NO_SCANNER
        await wait_until(lambda: adviser.requests[-1]["reason"] == "no-scanner", timeout=10, what="the reason told")
        assert gateway.sessions["apt_other"].connection_state == "connected"

        await desk.capture("apt_other", "camera")
        await adviser.request_state("req_1", "captured")
        request = gateway.documents["apt_other"].request
        assert request is not None and request.image is not None and request.mime == "image/jpeg"
        fmt = gateway.sessions["apt_other"].sources.format
        checked = check_document(request.image, "image/jpeg")
        assert (checked.width, checked.height) == (fmt.width, fmt.height), "the camera's full size"

        cancel = {"v": 1, "type": "document-request-cancel", "id": "req_1"}
        adviser.channels["documents"].send(json.dumps(cancel))
        await adviser.request_state("req_1", "cancelled")
        assert request.image is None
        with pytest.raises(NoRequest):
            await desk.send_capture("apt_other")
        assert adviser.incoming == []
        await adviser.pc.close()
        # With no call, there is no camera to photograph with.
        with pytest.raises(PhotoError):
            await gateway._take_photo("apt_none")
