"""What the canvas shows: the images of one job (previews, then results) or one saved image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine.protocol import GenerateParams


@dataclass
class CanvasImage:
    """One slot of the canvas strip. ``data`` is PNG bytes (None until something arrives)."""

    data: bytes | None = None
    path: Path | None = None
    preview: bool = False
    step: int = 0
    seed: int | None = None
    width: int = 0
    height: int = 0
    params: GenerateParams | None = None

    @property
    def ready(self) -> bool:
        """A final image (not a preview, not an empty slot)."""
        return self.data is not None and not self.preview


class CanvasState(QObject):
    """The canvas's content, independent of how it is drawn."""

    #: The set of slots changed (new job, history image opened): redraw the strip.
    reset = Signal()
    #: Slot ``index`` got new pixels (preview step or final result).
    updated = Signal(int)
    #: The slot shown large changed.
    current_changed = Signal(int)

    def __init__(self) -> None:
        super().__init__()
        self.images: list[CanvasImage] = []
        self.current = -1
        self.job_id = ""
        self._picked = False  # the user chose a slot; stop jumping to new arrivals

    @property
    def current_image(self) -> CanvasImage | None:
        return self.images[self.current] if 0 <= self.current < len(self.images) else None

    # ----------------------------------------------------------------- following a job
    def follow_job(self, job_id: str, count: int, params: GenerateParams | None = None) -> None:
        """Show a job that is starting: ``count`` empty slots to be filled as it runs."""
        if job_id == self.job_id:
            return
        self.job_id = job_id
        self.images = [CanvasImage(params=params) for _ in range(max(1, count))]
        self._picked = False
        self.current = 0
        self.reset.emit()
        self.current_changed.emit(0)

    def set_preview(self, job_id: str, index: int, data: bytes, step: int = 0) -> bool:
        """A preview for the followed job; ignored once that slot has its final image."""
        slot = self._slot(job_id, index)
        if slot is None or slot.ready:
            return False
        slot.data, slot.preview, slot.step = data, True, step
        self.updated.emit(index)
        self._maybe_jump(index)
        return True

    def set_result(
        self,
        job_id: str,
        index: int,
        data: bytes,
        *,
        path: Path | None = None,
        seed: int | None = None,
        width: int = 0,
        height: int = 0,
    ) -> bool:
        """The final image of slot ``index`` of the followed job."""
        slot = self._slot(job_id, index)
        if slot is None:
            return False
        slot.data, slot.preview, slot.path = data, False, path
        slot.seed, slot.width, slot.height = seed, width, height
        self.updated.emit(index)
        self._maybe_jump(index)
        return True

    def _slot(self, job_id: str, index: int) -> CanvasImage | None:
        if job_id != self.job_id or index < 0:
            return None
        if index >= len(self.images):
            # More images than announced (e.g. an engine that counts differently): grow.
            params = self.images[0].params if self.images else None
            self.images += [CanvasImage(params=params) for _ in range(index + 1 - len(self.images))]
            self.reset.emit()
        return self.images[index]

    def _maybe_jump(self, index: int) -> None:
        if not self._picked and index != self.current:
            self.current = index
            self.current_changed.emit(index)

    # ----------------------------------------------------------------- other content
    def show_image(self, image: CanvasImage) -> None:
        """Show one saved image (from the history or a dropped file) on its own."""
        self.show_images([image])

    def show_images(self, images: list[CanvasImage], current: int = 0) -> None:
        """Show saved images (e.g. a finished job's batch) as a strip."""
        self.job_id = ""
        self.images = list(images)
        self.current = max(0, min(current, len(self.images) - 1)) if self.images else -1
        self._picked = False
        self.reset.emit()
        self.current_changed.emit(self.current)

    def select(self, index: int) -> None:
        """The user picked a thumbnail."""
        if 0 <= index < len(self.images):
            self._picked = True
            if index != self.current:
                self.current = index
                self.current_changed.emit(index)

    def clear(self) -> None:
        self.job_id, self.images, self.current = "", [], -1
        self.reset.emit()
        self.current_changed.emit(-1)
