"""The Queue panel's actions on any job: cancel it, move a queued one (drag, or ↑/↓)."""

from __future__ import annotations

from PySide6.QtCore import QObject

from ..session import EngineSession
from ..state import JobsState


class QueueController(QObject):
    """Owned by :class:`app.controller.AppController` (``controller.queue``)."""

    def __init__(self, session: EngineSession, jobs: JobsState, parent: QObject | None = None):
        super().__init__(parent)
        self.session, self.jobs = session, jobs

    def cancel(self, job_id: str) -> None:
        """Cancel one job; a queued one never starts, the running one stops within a step."""
        self.session.spawn(self._cancel(job_id))

    async def _cancel(self, job_id: str) -> None:
        if self.session.client is None:
            return
        job = await self.session.client.cancel(job_id)
        self.jobs.upsert(job)

    def move(self, job_id: str, position: int) -> None:
        """Move a queued job to ``position`` among the queued jobs (0 = next)."""
        queued = self.jobs.queued_ids()
        if job_id not in queued:
            return
        position = max(0, min(position, len(queued) - 1))
        if queued.index(job_id) == position:
            return
        # Optimistic: reorder now, the engine's answer (and queue event) confirms.
        queued.remove(job_id)
        queued.insert(position, job_id)
        self.jobs.reorder(queued)
        self.session.spawn(self._move(job_id, position))

    async def _move(self, job_id: str, position: int) -> None:
        if self.session.client is None:
            return
        jobs = await self.session.client.move(job_id, position)
        self.jobs.set_order(jobs)

    def move_by(self, job_id: str, delta: int) -> None:
        queued = self.jobs.queued_ids()
        if job_id in queued:
            self.move(job_id, queued.index(job_id) + delta)
