"""The History dock's list: saved images, newest first, kept in step with the SQLite index."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QObject, Signal

from engine.protocol import GenerateParams

#: Entries the dock lists (older ones stay in the index, found again by a search). Also the
#: bound of a long session: each image made enters at the top and the oldest row leaves, so a
#: day of thousands of images keeps this many entries (and the dock this many thumbnails).
PAGE = 300


@dataclass(frozen=True)
class HistoryEntry:
    """One saved output and its recipe."""

    id: int
    path: Path
    created: float
    prompt: str
    seed: int
    params_json: str
    width: int
    height: int
    job_id: str = ""

    @property
    def params(self) -> GenerateParams | None:
        """The recipe, with the image's actual seed; None if the stored JSON is unreadable."""
        try:
            return GenerateParams.model_validate_json(self.params_json).with_seed(self.seed)
        except ValueError:
            return None

    @property
    def exists(self) -> bool:
        return self.path.is_file()


class EntryIndex(Protocol):
    """What the list reads of the History index (:class:`app.library.HistoryIndex`, SQLite:
    the I/O stays there, this module is pure state)."""

    def entries(
        self, limit: int = 500, offset: int = 0, search: str = ""
    ) -> list[HistoryEntry]: ...

    def remove(self, path: Path | str) -> None: ...


class HistoryState(QObject):
    """Entries for display; the index is the truth, this is the window onto it."""

    #: The whole list changed (load, search): rebuild.
    reset = Signal()
    #: One new entry at the top (the list keeps :data:`PAGE`: the oldest may have left it).
    added = Signal(object)

    def __init__(self, index: EntryIndex):
        super().__init__()
        self.index = index
        self.entries: list[HistoryEntry] = []
        self.search = ""

    def load(self, search: str | None = None) -> None:
        if search is not None:
            self.search = search
        self.entries = self.index.entries(limit=PAGE, search=self.search)
        self.reset.emit()

    def add(self, entry: HistoryEntry) -> None:
        """A new image at the top; among its own job's images (a batch arriving one by one,
        in any order) at its place by file name, so the batch reads in generation order."""
        self.entries = [e for e in self.entries if e.path != entry.path]
        if self.search and self.search.lower() not in entry.prompt.lower():
            return
        self.entries.insert(self.position_for(entry), entry)
        del self.entries[PAGE:]  # the oldest leave the list (not the index)
        self.added.emit(entry)

    def position_for(self, entry: HistoryEntry) -> int:
        """Where ``entry`` goes: after the top entries of the same job that come before it."""
        i = 0
        if entry.job_id:
            while (
                i < len(self.entries)
                and self.entries[i].job_id == entry.job_id
                and str(self.entries[i].path) < str(entry.path)
            ):
                i += 1
        return i

    def remove(self, entry: HistoryEntry) -> None:
        self.index.remove(entry.path)
        self.entries = [e for e in self.entries if e.path != entry.path]
        self.reset.emit()
