"""The call's `documents` data channel on the cabin's side: documents in (reassembled, checked, held in memory),
statuses out.

Created by the call (gateway/session.py) when the cabin has a screen, in every kind of appointment: in a bank, energy
or public-service call it is the only data channel, and readings never travel on it (it carries documents only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from aiortc import RTCDataChannel

from gateway.documents.check import Checked, DocumentRefused, check_document
from gateway.documents.transfer import Document, DocumentReceiver, DocumentState, TransferError, status

log = logging.getLogger("cabine.gateway.documents")

LABEL: Final = "documents"

OnDocument = Callable[[Document, Checked], None]


class DocumentsChannel:
    """One call's documents channel; `on_document` receives each document found fit (in memory, never on disk)."""

    def __init__(self, channel: RTCDataChannel, on_document: OnDocument, *, label: str = "call") -> None:
        self._channel = channel
        self._on_document = on_document
        self._receiver = DocumentReceiver()
        self.label = label
        self.received = 0
        self.refused = 0
        channel.on("message", self._on_message)

    def send_status(self, document_id: str, state: DocumentState, reason: str = "") -> None:
        """Tell the professional's console what became of a document (dropped if the channel is not open)."""
        if self._channel.readyState == "open":
            self._channel.send(status(document_id, state, reason))

    def _on_message(self, data: str | bytes) -> None:
        receiving = self._receiver.receiving
        try:
            if isinstance(data, str):
                document = self._receiver.text(data)
            else:
                self._receiver.binary(data)
                return
        except TransferError as exc:
            self._refuse(receiving.id if receiving is not None else "", str(exc))
            return
        if document is None:
            return
        try:
            checked = check_document(document.data, document.mime)
        except DocumentRefused as exc:
            self._refuse(document.id, str(exc))
            return
        self.received += 1
        # Its name and size only: what it says is the citizen's and the professional's business.
        log.info("%s: document %s received (%s, %d bytes)", self.label, document.id, checked.kind, len(document.data))
        self._on_document(document, checked)
        self.send_status(document.id, DocumentState.RECEIVED)

    def _refuse(self, document_id: str, reason: str) -> None:
        self.refused += 1
        log.info("%s: document %s refused: %s", self.label, document_id or "?", reason)
        self.send_status(document_id, DocumentState.REFUSED, reason)
