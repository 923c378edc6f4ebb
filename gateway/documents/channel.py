"""The call's `documents` data channel on the cabin's side: documents in (reassembled, checked, held in memory),
statuses out, and the documents the professional asked for sent back.

Created by the call (gateway/session.py) when the cabin has a screen, in every kind of appointment: in a bank, energy
or public-service call it is the only data channel, and readings never travel on it (it carries documents only).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Final

from aiortc import RTCDataChannel

from gateway.documents.check import Checked, DocumentRefused, check_document
from gateway.documents.transfer import (
    Control,
    Document,
    DocumentReceiver,
    DocumentState,
    RequestState,
    TransferError,
    announce,
    chunks,
    end,
    request_status,
    status,
)
from gateway.errors import GatewayError

log = logging.getLogger("cabine.gateway.documents")

LABEL: Final = "documents"
# Bytes queued on the channel before sending waits for them to drain (SCTP's send buffer is unbounded in aiortc).
HIGH_WATER: Final = 1024 * 1024
# A chunk that cannot be queued for this long means the call is gone in all but name.
DRAIN_TIMEOUT: Final = 30.0

OnDocument = Callable[[Document, Checked], None]
OnControl = Callable[[Control], None]


class ChannelClosed(GatewayError, ConnectionError):
    """The documents channel closed, or stalled, before a document was sent whole."""


class DocumentsChannel:
    """One call's documents channel; `on_document` receives each document found fit (in memory, never on disk),
    `on_control` each request, withdrawal and acknowledgement from the professional's console."""

    def __init__(
        self,
        channel: RTCDataChannel,
        on_document: OnDocument,
        *,
        on_control: OnControl | None = None,
        label: str = "call",
    ) -> None:
        self._channel = channel
        self._on_document = on_document
        self._on_control = on_control
        self._receiver = DocumentReceiver()
        self._drained = asyncio.Event()
        self._sending = asyncio.Lock()
        self.label = label
        self.received = 0
        self.refused = 0
        self.sent = 0
        channel.bufferedAmountLowThreshold = HIGH_WATER // 4
        channel.on("message", self._on_message)
        channel.on("bufferedamountlow", self._drained.set)
        channel.on("close", self._drained.set)

    @property
    def open(self) -> bool:
        return self._channel.readyState == "open"

    def send_status(self, document_id: str, state: DocumentState, reason: str = "") -> None:
        """Tell the professional's console what became of a document (dropped if the channel is not open)."""
        if self.open:
            self._channel.send(status(document_id, state, reason))

    def send_request_status(self, request_id: str, state: RequestState, reason: str = "") -> None:
        """Tell the console where the document it asked for stands (dropped if the channel is not open)."""
        if self.open:
            self._channel.send(request_status(request_id, state, reason))

    async def send_document(self, name: str, mime: str, data: bytes, *, request: str | None = None) -> str:
        """Send a document whole to the console, at the pace the channel drains; returns its id.

        Raises:
            ChannelClosed: the channel closed or stalled first (the console drops what it got).
        """
        document_id = "cab_" + secrets.token_hex(8)
        async with self._sending:
            self._send(announce(document_id, name, mime, data, request=request))
            for chunk in chunks(data):
                while self._channel.bufferedAmount > HIGH_WATER:
                    self._drained.clear()
                    try:
                        async with asyncio.timeout(DRAIN_TIMEOUT):
                            await self._drained.wait()
                    except TimeoutError:
                        raise ChannelClosed(f"the call took nothing for {DRAIN_TIMEOUT:g} s") from None
                self._send(chunk)
            self._send(end(document_id))
        self.sent += 1
        log.info("%s: document %s sent (%s, %d bytes)", self.label, document_id, mime, len(data))
        return document_id

    def _send(self, message: str | bytes) -> None:
        if not self.open:
            raise ChannelClosed("the call's documents channel is closed")
        self._channel.send(message)

    def _on_message(self, data: str | bytes) -> None:
        receiving = self._receiver.receiving
        try:
            if isinstance(data, str):
                found = self._receiver.text(data)
            else:
                self._receiver.binary(data)
                return
        except TransferError as exc:
            self._refuse(receiving.id if receiving is not None else "", str(exc))
            return
        if found is None:
            return
        if not isinstance(found, Document):
            if self._on_control is not None:
                self._on_control(found)
            return
        try:
            checked = check_document(found.data, found.mime)
        except DocumentRefused as exc:
            self._refuse(found.id, str(exc))
            return
        self.received += 1
        # Its name and size only: what it says is the citizen's and the professional's business.
        log.info("%s: document %s received (%s, %d bytes)", self.label, found.id, checked.kind, len(found.data))
        self._on_document(found, checked)
        self.send_status(found.id, DocumentState.RECEIVED)

    def _refuse(self, document_id: str, reason: str) -> None:
        self.refused += 1
        log.info("%s: document %s refused: %s", self.label, document_id or "?", reason)
        self.send_status(document_id, DocumentState.REFUSED, reason)
