"""What the jobs whose images land on the canvas share: following a job, previews, results.

:class:`CanvasJobs` is the base of the Generate and Compare controllers: the canvas follows the
job that started (or the newest one, once the shown one has finished), shows its previews and
stores each result through the :class:`~app.library.Library` before showing it. A subclass says
how its previews and results are drawn (one image per slot, or grid cells).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from PySide6.QtCore import QObject

from engine.protocol import (
    Event,
    Job,
    JobFinished,
    JobPreview,
    JobProgress,
    JobResult,
    JobStarted,
    JobState,
)

from ..library import Library, LocalResult
from ..session import ERROR, EngineSession
from ..state import CanvasState, JobsState
from ..state.grid import CanvasGrid
from ..state.jobs import JobItem


class CanvasJobs(QObject):
    """Claims ``kinds`` (their events come here) and shows their images."""

    def __init__(
        self,
        kinds: Iterable[str],
        session: EngineSession,
        library: Library,
        canvas: CanvasState,
        jobs: JobsState,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.session, self.library, self.canvas, self.jobs = session, library, canvas, jobs
        self.kinds = tuple(kinds)
        session.claim(self.kinds, self.handle_event)

    # ----------------------------------------------------------------- events
    def handle_event(self, event: Event) -> None:
        """An event of one of this controller's jobs (the session routes them here)."""
        if isinstance(event, JobStarted):
            self.follow(event.job_id)
        elif isinstance(event, JobProgress):
            if self.canvas.job_id != event.job_id and self.canvas.job_id == "":
                self.follow(event.job_id)
        elif isinstance(event, JobPreview):
            self.show_preview(event, self.jobs.get(event.job_id))
        elif isinstance(event, JobResult):
            self.session.spawn(
                self.library.store_result(event.job_id, event.image, self.show_result)
            )
        elif isinstance(event, JobFinished):
            self.finished(event.job)

    def finished(self, job: Job) -> None:
        if job.state is JobState.failed:
            self.session.notice.emit(ERROR, f"Job failed: {job.message or 'no reason given'}")
        elif job.state is JobState.done:
            self.library.store_missing(job, self.show_result)

    def show_preview(self, event: JobPreview, item: JobItem | None) -> None:
        """One image per slot (a batch): the canvas follows the job and shows the step."""
        if self.canvas.job_id != event.job_id:
            self.follow(event.job_id)
        slot = item.preview_slot(event.index) if item is not None else event.index
        total = item.total if item is not None else 0
        self.canvas.set_preview(event.job_id, slot, self.preview_bytes(event), event.step, total)

    def show_result(self, result: LocalResult) -> None:
        """A stored result: the canvas follows its job unless a newer one is shown."""
        job_id, image = result.job_id, result.image
        if self.canvas.job_id != job_id and (self.canvas.job_id == "" or self.is_latest(job_id)):
            self.follow(job_id)
        self.canvas.set_result(
            job_id,
            image.index,
            result.data,
            path=result.path,
            seed=image.seed,
            width=image.width,
            height=image.height,
            uncertainty=result.uncertainty,
        )

    # ----------------------------------------------------------------- following
    def follow(self, job_id: str) -> None:
        item = self.jobs.get(job_id)
        if item is not None and item.fit_kind is not None:
            return  # fits make no images
        if item is not None and item.grid is not None:
            if not self.grid_shown(job_id):
                self.canvas.follow_grid(CanvasGrid(job_id, item.grid))
        elif item is not None:
            self.canvas.follow_job(job_id, item.image_count, item.params)
        else:
            self.canvas.follow_job(job_id, 1)

    def follow_running(self) -> None:
        """After a (re)connect: the canvas follows the running job if it is one of ours."""
        running = self.jobs.running
        if running is not None and running.kind in self.kinds:
            self.follow(running.id)

    def preview_bytes(self, event: JobPreview) -> bytes:
        item = self.jobs.get(event.job_id)
        if item is not None and event.index in item.previews:
            return item.previews[event.index]
        return base64.b64decode(event.png_b64)

    def grid_shown(self, job_id: str) -> bool:
        """The canvas holds this job's grid (shown, or behind one of its opened cells)."""
        return self.canvas.grid is not None and self.canvas.grid.job_id == job_id

    def is_latest(self, job_id: str) -> bool:
        current = self.jobs.get(self.canvas.job_id)
        return current is None or current.state.finished
