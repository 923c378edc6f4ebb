"""The `documents` data channel's wire protocol: one document at a time, announced, sent in chunks, then checked.

Pure: no I/O. The sender announces `{"v": 1, "type": "document", "id", "name", "mime", "size", "sha256"}`, sends the
bytes as binary messages of at most CHUNK_BYTES, then `{"v": 1, "type": "document-end", "id"}`; the receiver answers
`{"v": 1, "type": "document-status", "id", "state", "reason"}` (state: received, refused, then printing, printed,
print-failed for a print). A document over MAX_DOCUMENT_BYTES, a chunk past the announced size, bytes with no
document announced, or a checksum that does not match ends that document with a refusal; the channel goes on.

The announcement may carry a `role` ("summary", "prescription": the doctor's papers for the citizen, which the cabin
screen offers to print first) and, from the cabin, the `request` it answers.

Documents the other way: the professional asks `{"v": 1, "type": "document-request", "id", "label"}` (and may
withdraw it: `document-request-cancel`); the cabin answers `{"v": 1, "type": "request-status", "id", "state",
"reason"}` as the citizen goes (see RequestState), then sends the page the citizen confirmed as a document like any
other, which the console acknowledges with a `document-status`.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.errors import GatewayError

VERSION: Final = 1
MAX_DOCUMENT_BYTES: Final = 20 * 1024 * 1024
# Below SCTP's usual message limit in browsers (256 KiB in Chromium, 64 KiB safest across them).
CHUNK_BYTES: Final = 64 * 1024
MAX_NAME: Final = 120
MIME_TYPES: Final = frozenset({"application/pdf", "image/png", "image/jpeg"})
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class TransferError(GatewayError, ValueError):
    """A message on the documents channel that cannot be accepted; the message is fit to show the professional."""


class Role(enum.StrEnum):
    """What a document is for the citizen (the cabin screen names it, and offers to print it first)."""

    SUMMARY = "summary"
    PRESCRIPTION = "prescription"


class DocumentState(enum.StrEnum):
    RECEIVED = "received"
    REFUSED = "refused"
    PRINTING = "printing"
    PRINTED = "printed"
    PRINT_FAILED = "print-failed"


class RequestState(enum.StrEnum):
    """Where a document the professional asked for stands, on the cabin's side."""

    SHOWN = "shown"  # the cabin screen asks the citizen for it
    CAPTURING = "capturing"  # the scanner or the camera is at work
    CAPTURED = "captured"  # the citizen sees the image and confirms or starts again
    SENDING = "sending"
    SENT = "sent"
    DECLINED = "declined"  # the citizen does not have it
    FAILED = "failed"  # the scanner or the camera failed (the reason says which); the citizen may try again
    CANCELLED = "cancelled"  # the professional withdrew it


@dataclass(frozen=True, slots=True)
class Announced:
    """A document announced by the sender: what it says it is."""

    id: str
    name: str
    mime: str
    size: int
    sha256: str
    role: Role | None = None


@dataclass(frozen=True, slots=True)
class Requested:
    """The professional asks the citizen for a document ("Justificatif de domicile")."""

    id: str
    label: str


@dataclass(frozen=True, slots=True)
class RequestCancelled:
    id: str


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """The console's answer about a document the cabin sent (received, or refused with its reason)."""

    id: str
    state: DocumentState
    reason: str


Control = Requested | RequestCancelled | Acknowledged


@dataclass(frozen=True, slots=True)
class Document:
    """A document received whole, its checksum verified (its content not yet checked: see gateway.documents.check)."""

    id: str
    name: str
    mime: str
    data: bytes = field(repr=False)
    role: Role | None = None


def status(document_id: str, state: DocumentState, reason: str = "") -> str:
    """The receiver's answer about one document."""
    message = {"v": VERSION, "type": "document-status", "id": document_id, "state": state.value, "reason": reason}
    return json.dumps(message, separators=(",", ":"))


def request_status(request_id: str, state: RequestState, reason: str = "") -> str:
    """The cabin's answer about a document the professional asked for."""
    message = {"v": VERSION, "type": "request-status", "id": request_id, "state": state.value, "reason": reason}
    return json.dumps(message, separators=(",", ":"))


def announce(document_id: str, name: str, mime: str, data: bytes, *, request: str | None = None) -> str:
    """The sender's announcement of `data` (the cabin uses it to send a scan back, naming the request)."""
    message: dict[str, object] = {
        "v": VERSION,
        "type": "document",
        "id": document_id,
        "name": name,
        "mime": mime,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    if request is not None:
        message["request"] = request
    return json.dumps(message, separators=(",", ":"))


def end(document_id: str) -> str:
    return json.dumps({"v": VERSION, "type": "document-end", "id": document_id}, separators=(",", ":"))


def chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]


def _announced(data: dict[str, Any], max_bytes: int) -> Announced:
    document_id, name, mime = data.get("id"), data.get("name"), data.get("mime")
    size, digest = data.get("size"), data.get("sha256")
    if not isinstance(document_id, str) or not _ID.match(document_id):
        raise TransferError("the document has no valid id")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise TransferError(f"the document's name must be 1 to {MAX_NAME} printable characters")
    if mime not in MIME_TYPES:
        raise TransferError("only PDF, PNG and JPEG documents can be sent to the cabin")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise TransferError("the document's size must be a positive number of bytes")
    if size > max_bytes:
        raise TransferError(f"the document is too large ({size / 1e6:.1f} MB; at most {max_bytes / 1e6:.0f} MB)")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise TransferError("the document's checksum must be a SHA-256 in hexadecimal")
    role = data.get("role")
    if role is not None and role not in set(Role):
        raise TransferError(f"a document's role is one of {', '.join(Role)}")
    return Announced(document_id, name.strip(), str(mime), size, digest, None if role is None else Role(role))


def _label(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME or any(ord(c) < 32 for c in value):
        raise TransferError(f"what is asked for must be said in 1 to {MAX_NAME} printable characters")
    return value.strip()


def _control(kind: object, data: dict[str, Any]) -> Control:
    """A request, its withdrawal, or the console's acknowledgement of a document the cabin sent."""
    control_id = data.get("id")
    if not isinstance(control_id, str) or not _ID.match(control_id):
        raise TransferError(f"a {str(kind)[:32]} message has no valid id")
    if kind == "document-request":
        return Requested(control_id, _label(data.get("label")))
    if kind == "document-request-cancel":
        return RequestCancelled(control_id)
    state, reason = data.get("state"), data.get("reason", "")
    if state not in (DocumentState.RECEIVED.value, DocumentState.REFUSED.value) or not isinstance(reason, str):
        raise TransferError("a document-status from the console is received or refused, with a reason")
    return Acknowledged(control_id, DocumentState(state), reason[:200])


class DocumentReceiver:
    """Reassembles the documents arriving on one channel, one at a time; memory is bounded by `max_bytes`.

    `text(message)` and `binary(chunk)` return the Document once it is complete and verified, else None; a refusal
    raises TransferError with the reason (the document in progress is dropped, the next one may come).
    """

    def __init__(self, max_bytes: int = MAX_DOCUMENT_BYTES) -> None:
        self._max = max_bytes
        self._current: Announced | None = None
        self._parts: list[bytes] = []
        self._received = 0

    @property
    def receiving(self) -> Announced | None:
        return self._current

    def _drop(self) -> None:
        self._current, self._parts, self._received = None, [], 0

    def text(self, message: str) -> Document | Control | None:
        """A control message: the Document it completes, a request and its kin, or None.

        Raises:
            TransferError: not a document protocol message, or the document ends wrong (its reason).
        """
        try:
            data = json.loads(message)
        except ValueError:
            raise TransferError("a message on the documents channel is not JSON") from None
        if not isinstance(data, dict) or data.get("v") != VERSION:
            raise TransferError(f"the documents channel speaks version {VERSION}")
        kind = data.get("type")
        if kind == "document":
            if self._current is not None:
                self._drop()
                raise TransferError("a document was announced before the previous one ended: both dropped")
            self._current = _announced(data, self._max)
            return None
        if kind == "document-end":
            current = self._current
            if current is None or data.get("id") != current.id:
                self._drop()
                raise TransferError("the end of a document that was not announced")
            body = b"".join(self._parts)
            self._drop()
            if len(body) != current.size:
                raise TransferError(f"the document arrived truncated ({len(body)} of {current.size} bytes)")
            if hashlib.sha256(body).hexdigest() != current.sha256:
                raise TransferError("the document arrived damaged (its checksum does not match)")
            return Document(current.id, current.name, current.mime, body, current.role)
        if kind in ("document-request", "document-request-cancel", "document-status"):
            return _control(kind, data)
        raise TransferError(f"unknown message {str(kind)[:32]!r} on the documents channel")

    def binary(self, chunk: bytes) -> None:
        """A chunk of the document being received.

        Raises:
            TransferError: no document announced, a chunk too large, or more bytes than announced.
        """
        current = self._current
        if current is None:
            raise TransferError("bytes arrived with no document announced")
        if len(chunk) > CHUNK_BYTES:
            self._drop()
            raise TransferError(f"a chunk of {len(chunk)} bytes (at most {CHUNK_BYTES})")
        self._received += len(chunk)
        if self._received > current.size:
            self._drop()
            raise TransferError(f"more bytes than announced ({current.size}): the document is dropped")
        self._parts.append(bytes(chunk))
