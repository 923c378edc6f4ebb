"""The cabin's paper desk: the documents of each appointment, both ways, in memory only.

The professional's documents are held for the cabin screen and printed when the citizen presses "Imprimer". A
document the professional asks for is scanned or photographed when the citizen chooses, shown to them, and sent
only once they confirm. Both screens follow every step: the cabin screen through `notify`, the professional's console
through the call's documents channel. Everything of an appointment is forgotten with it (`forget`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Final

from gateway.documents.channel import ChannelClosed, DocumentsChannel
from gateway.documents.check import Checked
from gateway.documents.held import DocumentRequest, HeldDocuments
from gateway.documents.photo import PhotoError
from gateway.documents.printer import Printed, Printer, PrintError, PrintProblem
from gateway.documents.scanner import ScanError, Scanner, ScanProblem
from gateway.documents.transfer import (
    MAX_DOCUMENT_BYTES,
    Acknowledged,
    Control,
    Document,
    DocumentState,
    Requested,
    RequestState,
)
from gateway.errors import GatewayError

log = logging.getLogger("cabine.gateway.documents")

SOURCES: Final = ("scanner", "camera")
_UNSAFE = re.compile(r"[^\w .,()'-]+")


class NoRequest(GatewayError, LookupError):
    """The citizen acted on a request that is not there, or not at that step (a press arriving late)."""


def file_name(label: str, mime: str) -> str:
    """What the professional downloads: what they asked for, with the image's extension."""
    stem = _UNSAFE.sub(" ", label).strip(" .") or "document"
    return f"{stem[:100]}.{'png' if mime == 'image/png' else 'jpg'}"


class DocumentDesk:
    """The documents of every appointment of the cabin (see the module's description).

    `channel_of(appointment)` is the call's documents channel (None while there is no call), `photo_of(appointment)`
    takes a still of the call's camera, `notify()` tells the cabin screen something changed.
    """

    def __init__(
        self,
        *,
        printer: Printer | None,
        scanner: Scanner | None,
        channel_of: Callable[[str], DocumentsChannel | None],
        photo_of: Callable[[str], Awaitable[bytes]],
        notify: Callable[[], None],
        label: str = "cabin",
    ) -> None:
        self.printer = printer
        self.scanner = scanner
        self._channel_of = channel_of
        self._photo_of = photo_of
        self._notify = notify
        self.label = label
        # By appointment: wiped with it.
        self.held: dict[str, HeldDocuments] = {}

    def forget(self, appointment_id: str) -> bool:
        """Forget all of an appointment's documents (True if it had any)."""
        return self.held.pop(appointment_id, None) is not None

    def clear(self) -> None:
        self.held.clear()

    def received(self, appointment_id: str, document: Document, checked: Checked) -> None:
        """A document from the professional, checked: held in memory for the cabin screen (bounded)."""
        self.held.setdefault(appointment_id, HeldDocuments()).add(document, checked)
        self._notify()

    # The professional's documents, printed.

    async def print_document(self, appointment_id: str, document_id: str) -> Printed:
        """Print a document the professional sent in this appointment (the citizen pressed "Imprimer").

        Its state goes to the professional's console (printing, then printed or print-failed with the reason) and to
        the cabin screen.

        Raises:
            PrintError: no printer, or the print failed (the reason is in it).
            KeyError: no such document in this appointment.
        """
        held = self.held.get(appointment_id)
        found = None if held is None else held.get(document_id)
        if held is None or found is None:
            raise KeyError(f"no document {document_id!r} in appointment {appointment_id!r}")

        def tell(state: DocumentState, reason: str = "") -> None:
            held.states[document_id] = (state, reason)
            self._notify()
            channel = self._channel_of(appointment_id)
            if channel is not None:
                channel.send_status(document_id, state, reason)

        if held.states.get(document_id, (None, ""))[0] is DocumentState.PRINTING:
            raise PrintError(PrintProblem.FAILED, "this document is being printed already")
        if self.printer is None:
            tell(DocumentState.PRINT_FAILED, PrintProblem.NO_PRINTER.value)
            raise PrintError(PrintProblem.NO_PRINTER, "this cabin has no printer")
        tell(DocumentState.PRINTING)
        try:
            printed = await self.printer.print_document(found.document.data, found.document.name)
        except PrintError as exc:
            tell(DocumentState.PRINT_FAILED, exc.problem.value)
            raise
        log.info("%s: document %s printed in %.1f s", self.label, document_id, printed.seconds)
        tell(DocumentState.PRINTED)
        return printed

    # Documents the professional asks for.

    def control(self, appointment_id: str, control: Control) -> None:
        """A request, its withdrawal, or the console's acknowledgement of what the cabin sent."""
        held = self.held.setdefault(appointment_id, HeldDocuments())
        request = held.request
        if isinstance(control, Requested):
            # One at a time: a new request replaces the one before, and its image if any.
            held.request = DocumentRequest(control.id, control.label)
            log.info("%s: document %s asked for", self.label, control.id)
            self._tell(appointment_id, held.request, RequestState.SHOWN)
        elif isinstance(control, Acknowledged):
            if request is not None and request.sent_as == control.id:
                request.received = control.state is DocumentState.RECEIVED
                if not request.received:
                    # The console refused it (it could not be read): the citizen may scan it again.
                    self._tell(appointment_id, request, RequestState.FAILED, "refused")
                self._notify()
        elif request is not None and request.id == control.id and request.state is not RequestState.SENT:
            request.forget_image()
            self._tell(appointment_id, request, RequestState.CANCELLED)

    def _tell(self, appointment_id: str, request: DocumentRequest, state: RequestState, reason: str = "") -> None:
        request.state, request.reason = state, reason
        self._notify()
        channel = self._channel_of(appointment_id)
        if channel is not None:
            channel.send_request_status(request.id, state, reason)

    def _request(self, appointment_id: str, *states: RequestState) -> DocumentRequest:
        held = self.held.get(appointment_id)
        request = None if held is None else held.request
        if request is None or request.state not in states:
            raise NoRequest(f"no document asked for at this step in appointment {appointment_id!r}")
        return request

    async def capture(self, appointment_id: str, source: str) -> None:
        """Scan the page on the scanner, or photograph it with the camera; the citizen then sees it.

        Raises:
            NoRequest: nothing asked for (or capturing already).
            ValueError: an unknown source.
            ScanError, PhotoError: the scanner or camera failed (both screens were told; the citizen may try again).
        """
        if source not in SOURCES:
            raise ValueError(f"a document is captured with {' or '.join(SOURCES)}, not {source!r}")
        request = self._request(
            appointment_id, RequestState.SHOWN, RequestState.FAILED, RequestState.CAPTURED, RequestState.DECLINED
        )
        request.forget_image()
        request.source = source
        self._tell(appointment_id, request, RequestState.CAPTURING)
        try:
            if source == "scanner":
                if self.scanner is None:
                    raise ScanError(ScanProblem.NO_SCANNER, "this cabin has no scanner")
                image, mime = (await self.scanner.scan()).png, "image/png"
            else:
                image, mime = await self._photo_of(appointment_id), "image/jpeg"
            if len(image) > MAX_DOCUMENT_BYTES:
                raise ScanError(ScanProblem.FAILED, f"the image is over {MAX_DOCUMENT_BYTES >> 20} MB")
        except (ScanError, PhotoError) as exc:
            reason = exc.problem.value if isinstance(exc, ScanError) else "camera"
            log.info("%s: document %s not captured (%s): %s", self.label, request.id, source, exc)
            if self._current(appointment_id) is request and request.state is RequestState.CAPTURING:
                self._tell(appointment_id, request, RequestState.FAILED, reason)
            raise
        if self._current(appointment_id) is not request or request.state is not RequestState.CAPTURING:
            return  # withdrawn meanwhile: the image is dropped here
        request.image, request.mime = image, mime
        request.shots += 1
        self._tell(appointment_id, request, RequestState.CAPTURED)

    def _current(self, appointment_id: str) -> DocumentRequest | None:
        held = self.held.get(appointment_id)
        return None if held is None else held.request

    async def send_capture(self, appointment_id: str) -> str:
        """The citizen confirmed: the image goes to the professional, then is forgotten here. Returns its id.

        Raises:
            NoRequest: no image waiting for confirmation.
            ChannelClosed: no call, or the call dropped while sending (the image is kept: the citizen may send it
                again once the call is back).
        """
        request = self._request(appointment_id, RequestState.CAPTURED)
        image, mime = request.image, request.mime
        if image is None:
            raise NoRequest("no image to send")
        channel = self._channel_of(appointment_id)
        if channel is None or not channel.open:
            raise ChannelClosed("no call to send the document on")
        self._tell(appointment_id, request, RequestState.SENDING)
        try:
            request.sent_as = await channel.send_document(
                file_name(request.label, mime), mime, image, request=request.id
            )
        except ChannelClosed:
            if self._current(appointment_id) is request and request.state is RequestState.SENDING:
                self._tell(appointment_id, request, RequestState.CAPTURED, "call")
            raise
        request.forget_image()
        self._tell(appointment_id, request, RequestState.SENT)
        return request.sent_as

    def retake(self, appointment_id: str) -> None:
        """The citizen wants to start again: the image is dropped, the screen asks again."""
        request = self._request(appointment_id, RequestState.CAPTURED, RequestState.FAILED, RequestState.DECLINED)
        request.forget_image()
        self._tell(appointment_id, request, RequestState.SHOWN)

    def decline(self, appointment_id: str) -> None:
        """The citizen does not have the document: the professional is told."""
        request = self._request(
            appointment_id, RequestState.SHOWN, RequestState.CAPTURED, RequestState.FAILED, RequestState.DECLINED
        )
        request.forget_image()
        self._tell(appointment_id, request, RequestState.DECLINED)
