"""What the canvas shows: the images of one job (previews, then results) or one saved image."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from engine.protocol import GenerateParams, GridCell

from .canvas_image import CanvasImage

if TYPE_CHECKING:
    from .grid import CanvasGrid
    from .uncertainty import UncertaintyMap


class CanvasState(QObject):
    """The canvas's content, independent of how it is drawn."""

    #: The set of slots changed (new job, history image opened): redraw the strip.
    reset = Signal()
    #: Slot ``index`` got new pixels (preview step or final result).
    updated = Signal(int)
    #: The slot shown large changed.
    current_changed = Signal(int)
    #: A sampler grid was set, shown or hidden (``grid``, ``grid_visible``).
    grid_changed = Signal()
    #: Grid cell (row, col) got new pixels or its seconds.
    grid_updated = Signal(int, int)
    #: An uncertainty map arrived, or the strip was re-ordered or filtered by score.
    maps_changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.images: list[CanvasImage] = []
        self.current = -1
        self.job_id = ""
        self._picked = False  # the user chose a slot; stop jumping to new arrivals
        #: The latest sampler grid; kept while one of its cells is open, for "Back to grid".
        self.grid: CanvasGrid | None = None
        self.grid_visible = False
        #: Images set aside by "keep the N most certain" (still on disk; "Show all" restores).
        self.hidden: list[CanvasImage] = []

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
        self.hidden = []
        self._picked = False
        self.current = 0
        # a new image job replaces the grid: "Back to grid" would lead to an older job's
        # comparison (the grid's sheet reopens from the History)
        self._drop_grid()
        self.reset.emit()
        self.current_changed.emit(0)

    # ----------------------------------------------------------------- sampler grids
    def follow_grid(self, grid: CanvasGrid) -> None:
        """Show a sampler grid job that is starting: its labelled, still empty cells."""
        if self.grid is not None and self.grid.job_id == grid.job_id and self.job_id == grid.job_id:
            return
        self.job_id = grid.job_id
        self.images, self.current, self._picked = [], -1, False
        self.grid, self.grid_visible = grid, True
        self.reset.emit()
        self.grid_changed.emit()

    def _grid_of(self, job_id: str) -> CanvasGrid | None:
        return self.grid if self.grid is not None and self.grid.job_id == job_id else None

    def set_grid_preview(self, job_id: str, index: int, data: bytes, step: int = 0) -> bool:
        """A preview of the grid's ``index``-th cell (row-major) while it samples."""
        grid = self._grid_of(job_id)
        slot = grid.slot(*grid.position(index)) if grid is not None else None
        if slot is None or slot.image.ready:
            return False
        slot.image.data, slot.image.preview = data, True
        slot.image.step, slot.image.total = grid.cell_step(index, step)
        self.grid_updated.emit(slot.row, slot.col)
        return True

    def set_grid_result(
        self,
        job_id: str,
        cell: GridCell,
        data: bytes,
        *,
        path: Path | None = None,
        seed: int | None = None,
    ) -> bool:
        """A finished cell: its image, where it was saved and the seconds it took."""
        grid = self._grid_of(job_id)
        slot = grid.apply_cell(cell, seed) if grid is not None else None
        if slot is None:
            return False
        image = slot.image
        image.data, image.preview, image.path, image.seed = data, False, path, seed
        self.grid_updated.emit(slot.row, slot.col)
        return True

    def set_grid_sheet(self, job_id: str, path: Path) -> None:
        """The assembled grid PNG was saved."""
        grid = self._grid_of(job_id)
        if grid is not None:
            grid.sheet_path = path
            self.grid_changed.emit()

    def open_cell(self, row: int, col: int) -> bool:
        """Show one finished grid cell large, with its recipe; the grid stays for going back."""
        slot = self.grid.slot(row, col) if self.grid is not None else None
        if slot is None or slot.image.data is None:
            return False
        grid = self.grid
        self.show_images([slot.image])
        self.grid = grid
        self.grid_changed.emit()
        return True

    def show_grid(self) -> bool:
        """Back to the latest grid."""
        if self.grid is None:
            return False
        self.job_id = self.grid.job_id if not self.grid.complete else ""
        self.images, self.current = [], -1
        self.grid_visible = True
        self.reset.emit()
        self.grid_changed.emit()
        return True

    def _drop_grid(self) -> None:
        if self.grid is not None or self.grid_visible:
            self.grid, self.grid_visible = None, False
            self.grid_changed.emit()

    def _hide_grid(self) -> None:
        if self.grid_visible:
            self.grid_visible = False
            self.grid_changed.emit()

    def set_preview(
        self, job_id: str, index: int, data: bytes, step: int = 0, total: int = 0
    ) -> bool:
        """A preview for the followed job at ``step`` of the job's ``total`` (the numbers the
        progress bar shows); ignored once that slot has its final image."""
        slot = self._slot(job_id, index)
        if slot is None or slot.ready:
            return False
        slot.data, slot.preview, slot.step, slot.total = data, True, step, total
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
        uncertainty: UncertaintyMap | None = None,
    ) -> bool:
        """The final image of slot ``index`` of the followed job."""
        slot = self._slot(job_id, index)
        if slot is None:
            return False
        slot.data, slot.preview, slot.path = data, False, path
        slot.seed, slot.width, slot.height = seed, width, height
        slot.uncertainty = uncertainty
        self.updated.emit(index)
        self._maybe_jump(index)
        if uncertainty is not None:
            self.maps_changed.emit()
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
        """Show saved images (e.g. a finished job's batch) as a strip (not part of a grid:
        :meth:`open_cell` puts its grid back for "Back to grid")."""
        self.job_id = ""
        self.images = list(images)
        self.hidden = []
        self.current = max(0, min(current, len(self.images) - 1)) if self.images else -1
        self._picked = False
        self._drop_grid()
        self.reset.emit()
        self.current_changed.emit(self.current)

    def select(self, index: int) -> None:
        """The user picked a thumbnail."""
        if 0 <= index < len(self.images):
            self._picked = True
            if index != self.current:
                self.current = index
                self.current_changed.emit(index)

    # ----------------------------------------------------------------- uncertainty
    def set_uncertainty(self, image: CanvasImage, umap: UncertaintyMap) -> None:
        """Attach a map to a slot (found by identity: the strip may have been re-ordered)."""
        image.uncertainty = umap
        for i, shown in enumerate(self.images):
            if shown is image:
                self.updated.emit(i)
        self.maps_changed.emit()

    def sort_most_certain(self) -> bool:
        """Re-order the strip from the most certain image (lowest score) to the least."""
        from .uncertainty import most_certain_first

        if not self.images or not all(im.ready for im in self.images):
            return False  # a running job's slots keep their order until every image is in
        if not any(im.score is not None for im in self.images):
            return False
        self.job_id = ""  # finished: slots are no longer addressed by the job's indices
        current = self.current_image
        order = most_certain_first([im.score for im in self.images])
        self.images = [self.images[i] for i in order]
        self._reshow(current)
        return True

    def keep_most_certain(self, n: int) -> bool:
        """Show only the ``n`` most certain images; the rest wait in :attr:`hidden`."""
        if not self.sort_most_certain():
            return False
        n = max(1, n)
        self.hidden = self.images[n:] + self.hidden
        current = self.current_image
        self.images = self.images[:n]
        self._reshow(current)
        return True

    def show_all(self) -> None:
        if self.hidden:
            current = self.current_image
            self.images += self.hidden
            self.hidden = []
            self._reshow(current)

    def _reshow(self, current: CanvasImage | None) -> None:
        self.current = next((i for i, im in enumerate(self.images) if im is current), 0)
        self._picked = True
        self.reset.emit()
        self.current_changed.emit(self.current)
        self.maps_changed.emit()

    def clear(self) -> None:
        self.hidden = []
        self.job_id, self.images, self.current = "", [], -1
        self.grid = None
        self._hide_grid()
        self.reset.emit()
        self.current_changed.emit(-1)
