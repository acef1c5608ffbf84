"""The History dock's list: saved images, newest first, kept in step with the SQLite index."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

if TYPE_CHECKING:  # the index is I/O (app/library.py); this module stays pure state
    from app.library import HistoryEntry, HistoryIndex

#: Entries loaded into the dock at once (older ones stay in the index).
PAGE = 300


class HistoryState(QObject):
    """Entries for display; the index is the truth, this is the window onto it."""

    #: The whole list changed (load, search): rebuild.
    reset = Signal()
    #: One new entry at the top.
    added = Signal(object)

    def __init__(self, index: HistoryIndex):
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
        self.added.emit(entry)

    def position_for(self, entry: HistoryEntry) -> int:
        """Where ``entry`` goes: after the top entries of the same job that come before it."""
        i = 0
        if entry.job_id:
            while (i < len(self.entries) and self.entries[i].job_id == entry.job_id
                   and str(self.entries[i].path) < str(entry.path)):
                i += 1
        return i

    def remove(self, entry: HistoryEntry) -> None:
        self.index.remove(entry.path)
        self.entries = [e for e in self.entries if e.path != entry.path]
        self.reset.emit()
