"""Thumbnails decoded off the UI thread (QThreadPool), delivered back by a queued signal."""

from __future__ import annotations

import functools
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QObject, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QImageReader

from app.library import thumbnail_source


class _Relay(QObject):
    done = Signal(str, QImage)


def _decode(path: str, size: int, relay: _Relay) -> None:
    """On a pool thread: read ``path`` scaled to fit ``size`` and hand it to ``relay``."""
    # a video stands in the lists as its poster (first frame) saved beside it
    reader = QImageReader(str(thumbnail_source(Path(path))))
    full = reader.size()
    if full.isValid() and (full.width() > size or full.height() > size):
        reader.setScaledSize(full.scaled(QSize(size, size), Qt.AspectRatioMode.KeepAspectRatio))
    relay.done.emit(path, reader.read())


#: The decoded thumbnails kept for reuse (a search rebuilding the list): the most recently used
#: up to this many bytes (~300 at 168 px; the rows shown hold their own icons).
CACHE_BYTES = 32 * 2**20


class ThumbnailLoader(QObject):
    """``request(path)`` → later ``ready(path, QImage)`` on the UI thread; results are cached
    (least recently used first out, up to ``cache_bytes`` and ``max_items``)."""

    ready = Signal(str, QImage)

    def __init__(
        self,
        size: int = 160,
        parent: QObject | None = None,
        cache_bytes: int = CACHE_BYTES,
        max_items: int = 1000,
    ):
        super().__init__(parent)
        self.size = size
        self.cache_bytes, self.max_items = cache_bytes, max_items
        self._cache: OrderedDict[str, QImage] = OrderedDict()
        self._cached_bytes = 0
        self._pending: set[str] = set()
        self._relay = _Relay()
        self._relay.done.connect(self._done, Qt.ConnectionType.QueuedConnection)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)

    def cached(self, path: str) -> QImage | None:
        image = self._cache.get(path)
        if image is not None:
            self._cache.move_to_end(path)
        return image

    @property
    def cached_bytes(self) -> int:
        """Pixel bytes the cache holds (at most :attr:`cache_bytes`, or one image)."""
        return self._cached_bytes

    def request(self, path: str) -> None:
        image = self.cached(path)
        if image is not None:
            self.ready.emit(path, image)
        elif path not in self._pending:
            self._pending.add(path)
            # a plain callable: a QRunnable subclass started on a pool with a parent stays
            # referenced by the pool's wrapper after it ran (one per thumbnail, for good)
            self._pool.start(functools.partial(_decode, path, self.size, self._relay))

    def _done(self, path: str, image: QImage) -> None:
        self._pending.discard(path)
        if not image.isNull():
            self._keep(path, image)
        self.ready.emit(path, image)

    def _keep(self, path: str, image: QImage) -> None:
        old = self._cache.pop(path, None)
        if old is not None:
            self._cached_bytes -= old.sizeInBytes()
        self._cache[path] = image
        self._cached_bytes += image.sizeInBytes()
        while len(self._cache) > 1 and (
            self._cached_bytes > self.cache_bytes or len(self._cache) > self.max_items
        ):
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= dropped.sizeInBytes()

    def wait(self) -> None:
        """Block until queued decodes finish (tests and shutdown only)."""
        self._pool.waitForDone(5000)
