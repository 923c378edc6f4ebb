"""The documents held for one appointment, in memory only, bounded, and the document the professional asked for;
the cabin screen shows them. Pure."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from gateway.documents.check import Checked
from gateway.documents.transfer import Document, DocumentState, RequestState

MAX_DOCUMENTS: Final = 10
MAX_BYTES: Final = 60 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Held:
    document: Document
    checked: Checked


@dataclass(slots=True)
class DocumentRequest:
    """A document the professional asked for, as the citizen goes; its image stays in memory, and only until sent."""

    id: str
    label: str
    state: RequestState = RequestState.SHOWN
    reason: str = ""
    source: str | None = None  # "scanner" or "camera"
    image: bytes | None = field(default=None, repr=False)
    mime: str = ""
    # Images taken so far: the page fetches the image again after "start again".
    shots: int = 0
    # The id the image was sent under, and whether the console said it has it whole.
    sent_as: str | None = None
    received: bool = False

    def forget_image(self) -> None:
        self.image, self.mime = None, ""

    def view(self) -> dict[str, object]:
        """As the cabin screen shows it: the image is fetched by the page, from memory, while it is held."""
        return {
            "id": self.id,
            "label": self.label,
            "state": self.state.value,
            "reason": self.reason,
            "source": self.source,
            "shot": self.shots if self.image is not None else None,
            "received": self.received,
        }


class HeldDocuments:
    """At most MAX_DOCUMENTS and MAX_BYTES for one appointment: the oldest go first. Nothing here touches a disk."""

    def __init__(self) -> None:
        self._documents: OrderedDict[str, Held] = OrderedDict()
        # What became of each document the citizen asked to print: (state, reason), for the cabin screen.
        self.states: dict[str, tuple[DocumentState, str]] = {}
        # The document the professional asked the citizen for (one at a time: a new request replaces it).
        self.request: DocumentRequest | None = None

    def __len__(self) -> int:
        return len(self._documents)

    @property
    def size(self) -> int:
        return sum(len(h.document.data) for h in self._documents.values())

    def add(self, document: Document, checked: Checked) -> None:
        self._documents.pop(document.id, None)
        self._documents[document.id] = Held(document, checked)
        while len(self._documents) > MAX_DOCUMENTS or (len(self._documents) > 1 and self.size > MAX_BYTES):
            dropped, _ = self._documents.popitem(last=False)
            self.states.pop(dropped, None)

    def get(self, document_id: str) -> Held | None:
        return self._documents.get(document_id)

    def all(self) -> list[Held]:
        return list(self._documents.values())

    def view(self, held: Held) -> dict[str, object]:
        """One document as the cabin screen lists it: never its content, which the page fetches page by page."""
        state, reason = self.states.get(held.document.id, (None, ""))
        return {
            "id": held.document.id,
            "name": held.document.name,
            "kind": held.checked.kind,
            "role": None if held.document.role is None else held.document.role.value,
            "pages": held.checked.pages,
            "state": None if state is None else state.value,
            "reason": reason,
        }
