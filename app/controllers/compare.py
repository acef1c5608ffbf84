"""The Compare dialog's job: one ``sampler_grid`` job, the current recipe across the chosen
samplers, schedules, steps or CFG scales; its cells fill the canvas's grid as they land.

A cell clicked opens large with its own recipe (:meth:`CompareController.open_grid_cell`).
"""

from __future__ import annotations

from PySide6.QtCore import QObject

from engine.protocol import Job, JobPreview, JobSubmit, SamplerGridJob, kind_of

from ..client import EngineClient
from ..library import Library, LocalResult
from ..session import ERROR, INFO, WARNING, EngineSession
from ..state import CanvasState, GenerationSettings, JobsState
from ..state.grid import GridChoice
from ..state.jobs import JobItem
from .canvas_jobs import CanvasJobs

GRID_KIND = kind_of(SamplerGridJob)


class CompareController(CanvasJobs):
    """Owned by :class:`app.controller.AppController` (``controller.compare_jobs``)."""

    def __init__(
        self,
        session: EngineSession,
        library: Library,
        generation: GenerationSettings,
        canvas: CanvasState,
        jobs: JobsState,
        parent: QObject | None = None,
    ):
        super().__init__((GRID_KIND,), session, library, canvas, jobs, parent)
        self.generation = generation
        session.on_sync(self._on_sync)

    async def _on_sync(self, _client: EngineClient, _jobs: list[Job]) -> None:
        self.follow_running()

    def compare(self, choice: GridChoice) -> None:
        """Queue one ``sampler_grid`` job: the current prompt and seed across ``choice``."""
        problem = choice.problem()
        params = self.generation.validated_params()
        if problem or params is None:
            self.session.notice.emit(ERROR, problem or "Fix the highlighted fields first.")
            return
        grid = choice.to_params(params)
        if not self.session.usable:
            self.session.notice.emit(WARNING, "The engine is not ready yet; try again in a moment.")
            return
        self.session.spawn(
            self.session.submit_job(JobSubmit(job=SamplerGridJob(params=grid)), "Comparison")
        )

    def open_grid_cell(self, row: int, col: int) -> None:
        """Show one grid cell large, with its recipe."""
        if not self.canvas.open_cell(row, col):
            self.session.notice.emit(INFO, "That cell is not rendered yet.")

    # ----------------------------------------------------------------- drawing
    def show_preview(self, event: JobPreview, item: JobItem | None) -> None:
        if item is None or item.grid is None:
            super().show_preview(event, item)
            return
        if self.canvas.job_id != event.job_id and not self.grid_shown(event.job_id):
            self.follow(event.job_id)
        self.canvas.set_grid_preview(
            event.job_id, event.index, self.preview_bytes(event), event.step
        )

    def show_result(self, result: LocalResult) -> None:
        job_id, image = result.job_id, result.image
        item = self.jobs.get(job_id)
        if item is None or item.grid is None:
            super().show_result(result)
            return
        if not self.grid_shown(job_id) and (
            self.canvas.job_id in ("", job_id) or self.is_latest(job_id)
        ):
            self.follow(job_id)
        if image.cell is not None:
            self.canvas.set_grid_result(
                job_id, image.cell, result.data, path=result.path, seed=image.seed
            )
        elif image.role == "grid":
            self.canvas.set_grid_sheet(job_id, result.path)
