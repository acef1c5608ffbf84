"""Saved results back on screen: a History entry, a finished Queue job, a dropped file.

An image opens on the canvas with the uncertainty map saved beside it, a saved comparison grid
opens as a grid again (its cells clickable), an edited video opens in the Video panel
(:attr:`ResultsController.video_opened`). The files come from the
:class:`~app.library.Library`; nothing here talks to the engine.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine.protocol import GenerateParams

from ..library import Library, is_video
from ..recipe import grid_from_file
from ..session import INFO, WARNING, EngineSession
from ..state import CanvasImage, CanvasState, HistoryState
from ..state.grid import CanvasGrid
from ..state.history import HistoryEntry


class ResultsController(QObject):
    """Owned by :class:`app.controller.AppController` (``controller.results``)."""

    #: A video result was opened from the History: (its path) — the window plays it in the
    #: Video panel.
    video_opened = Signal(str)

    def __init__(
        self,
        session: EngineSession,
        library: Library,
        canvas: CanvasState,
        history: HistoryState,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.session, self.library, self.canvas, self.history = session, library, canvas, history

    def open_history(self, entry: HistoryEntry) -> None:
        """Show a saved image on the canvas."""
        self.session.spawn(self._open_history(entry))

    async def _open_history(self, entry: HistoryEntry) -> None:
        if not entry.exists:
            self.session.notice.emit(
                WARNING, f"{entry.path.name} is gone from disk; removed from history."
            )
            self.history.remove(entry)
            return
        if is_video(entry.path):
            self.video_opened.emit(str(entry.path))  # the window shows it in the Video panel
            return
        if await self.show_grid_file(entry.path):
            return
        image = await self.library.load(
            entry.path, seed=entry.seed, width=entry.width, height=entry.height, params=entry.params
        )
        self.canvas.show_image(image)
        await self.attach_maps([image])

    async def show_grid_file(self, path: Path) -> bool:
        """A saved comparison grid opens as a grid again, its cells clickable; False if the
        file is not one."""
        loop = asyncio.get_running_loop()
        saved = await loop.run_in_executor(None, grid_from_file, path)
        if saved is None:
            return False
        key = f"file:{path}"
        self.canvas.follow_grid(CanvasGrid(key, saved.params))
        for cell, cell_path in saved.cells:
            data = await loop.run_in_executor(None, cell_path.read_bytes)
            entry = self.library.index.get(cell_path)
            self.canvas.set_grid_result(
                key, cell, data, path=cell_path, seed=entry.seed if entry is not None else None
            )
        self.canvas.set_grid_sheet(key, path)
        missing = self.canvas.grid.cell_count - len(saved.cells) if self.canvas.grid else 0
        if missing:
            self.session.notice.emit(
                INFO,
                f"{missing} cell image(s) of this grid are no "
                "longer beside it; those cells stay empty.",
            )
        return True

    def open_job(self, job_id: str) -> None:
        """Show a finished job's images on the canvas (Queue dock click)."""
        self.session.spawn(self._open_job(job_id))

    async def _open_job(self, job_id: str) -> None:
        entries = [e for e in self.library.index.by_job(job_id) if e.exists]
        if not entries:
            self.session.notice.emit(INFO, "This job's images are not in the history (any more).")
            return
        images = [
            await self.library.load(
                e.path, seed=e.seed, width=e.width, height=e.height, params=e.params
            )
            for e in entries
        ]
        self.canvas.show_images(images)
        await self.attach_maps(images)

    async def show_file(self, path: Path, params: GenerateParams) -> None:
        """A dropped file whose recipe was restored: shown (a grid as a grid)."""
        if await self.show_grid_file(path):
            return
        image = await self.library.load(
            path, seed=params.seed, width=params.width, height=params.height, params=params
        )
        self.canvas.show_image(image)
        await self.attach_maps([image])

    async def attach_maps(self, images: list[CanvasImage]) -> None:
        """Saved images shown again: their maps, where one was saved beside them."""
        for image, umap in await self.library.maps_of(images):
            self.canvas.set_uncertainty(image, umap)
