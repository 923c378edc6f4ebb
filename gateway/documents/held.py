"""The documents held for one appointment, in memory only, bounded; the cabin screen shows them. Pure."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from gateway.documents.check import Checked
from gateway.documents.transfer import Document, DocumentState

MAX_DOCUMENTS: Final = 10
MAX_BYTES: Final = 60 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Held:
    document: Document
    checked: Checked


class HeldDocuments:
    """At most MAX_DOCUMENTS and MAX_BYTES for one appointment: the oldest go first. Nothing here touches a disk."""

    def __init__(self) -> None:
        self._documents: OrderedDict[str, Held] = OrderedDict()
        # What became of each document the citizen asked to print: (state, reason), for the cabin screen.
        self.states: dict[str, tuple[DocumentState, str]] = {}

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
            "pages": held.checked.pages,
            "state": None if state is None else state.value,
            "reason": reason,
        }
