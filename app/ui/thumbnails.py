"""Thumbnails decoded off the UI thread (QThreadPool), delivered back by a queued signal."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QImageReader

from app.library import thumbnail_source


class _Relay(QObject):
    done = Signal(str, QImage)


class _Job(QRunnable):
    def __init__(self, path: str, size: int, relay: _Relay):
        super().__init__()
        self.path, self.size, self.relay = path, size, relay

    def run(self) -> None:
        # a video stands in the lists as its poster (first frame) saved beside it
        reader = QImageReader(str(thumbnail_source(Path(self.path))))
        full = reader.size()
        if full.isValid() and (full.width() > self.size or full.height() > self.size):
            reader.setScaledSize(full.scaled(QSize(self.size, self.size),
                                             Qt.AspectRatioMode.KeepAspectRatio))
        image = reader.read()
        self.relay.done.emit(self.path, image)


class ThumbnailLoader(QObject):
    """``request(path)`` → later ``ready(path, QImage)`` on the UI thread; results are cached."""

    ready = Signal(str, QImage)

    def __init__(self, size: int = 160, parent: QObject | None = None):
        super().__init__(parent)
        self.size = size
        self._cache: dict[str, QImage] = {}
        self._pending: set[str] = set()
        self._relay = _Relay()
        self._relay.done.connect(self._done, Qt.ConnectionType.QueuedConnection)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)

    def cached(self, path: str) -> QImage | None:
        return self._cache.get(path)

    def request(self, path: str) -> None:
        if path in self._cache:
            self.ready.emit(path, self._cache[path])
        elif path not in self._pending:
            self._pending.add(path)
            self._pool.start(_Job(path, self.size, self._relay))

    def _done(self, path: str, image: QImage) -> None:
        self._pending.discard(path)
        if not image.isNull():
            if len(self._cache) > 2000:
                self._cache.clear()
            self._cache[path] = image
        self.ready.emit(path, image)

    def wait(self) -> None:
        """Block until queued decodes finish (tests and shutdown only)."""
        self._pool.waitForDone(5000)
