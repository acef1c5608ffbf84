"""The Robustness panel's intents → a ``prompt_robustness`` job, its events → :class:`RobustnessState`.

Run the probe on the Prompt panel's recipe, follow it (the session routes that kind's events
here), fetch its images as they land and its report as each group finishes, cancel it, and put
a chosen wording back into the prompt. Every engine refusal lands in ``state.message`` in the
engine's words; nothing raises into Qt. Every finished generate job times the next estimate.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject

from engine.protocol import (
    Event,
    GenerateJob,
    Job,
    JobFinished,
    JobProgress,
    JobQueued,
    JobResult,
    JobStarted,
    JobState,
    JobSubmit,
    ResultImage,
    RobustnessJob,
    kind_of,
)

from ..client import EngineClient, EngineError
from ..session import EngineSession
from ..state.generation import GenerationSettings
from ..state.robustness import RobustnessState

log = logging.getLogger(__name__)

ROBUSTNESS_KIND = kind_of(RobustnessJob)


class RobustnessController(QObject):
    """Owned by :class:`app.controller.AppController` (``controller.robustness_jobs``)."""

    def __init__(
        self,
        state: RobustnessState,
        generation: GenerationSettings,
        session: EngineSession,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.state, self.generation, self.session = state, generation, session
        self.engine, self.jobs = session.engine, session.jobs
        session.claim((ROBUSTNESS_KIND,), self.handle_event)
        session.job_finished.connect(self._measure)

    # ----------------------------------------------------------------- intents
    def run(self) -> asyncio.Task[Any] | None:
        """Probe the Prompt panel's prompt with its recipe and the panel's settings."""
        s = self.state
        base = self.generation.to_params()
        if not base.prompt.strip():
            s.message = ("warning", "Write a prompt in the Prompt panel first.")
            return None
        client = self.session.client
        if client is None or not self.engine.connection.usable:
            s.message = ("warning", "The engine is not connected yet; try again in a moment.")
            return None
        return self.session.spawn(self._submit(client, RobustnessJob(params=s.params(base))))

    async def _submit(self, client: EngineClient, spec: RobustnessJob) -> None:
        s = self.state
        s.reset()
        s.status = "queued"
        try:
            job = await client.submit_job(JobSubmit(job=spec))
        except EngineError as exc:  # ApiError too: its str() is the engine's message
            s.status, s.message = "", ("error", str(exc))
            return
        s.job_id = job.id
        self.jobs.upsert(job)

    def cancel(self) -> None:
        client, job_id = self.session.client, self.state.job_id
        if client is None or not job_id or self.state.status not in ("queued", "running"):
            return
        self.session.spawn(self._cancel(client, job_id))

    async def _cancel(self, client: EngineClient, job_id: str) -> None:
        try:
            self.jobs.upsert(await client.cancel(job_id))
        except EngineError as exc:
            self.state.message = ("error", str(exc))

    def use_wording(self, prompt: str) -> None:
        """Put a probed wording into the Prompt panel (the artist's prompt becomes it)."""
        self.generation.prompt = prompt
        self.state.message = ("info", "The prompt now reads: " + prompt)

    # ----------------------------------------------------------------- events
    def handle_event(self, event: Event) -> None:
        """Fold an event of a ``prompt_robustness`` job into the state (the session routes
        them here: the canvas and the History leave them alone, its images belong to the
        report)."""
        if isinstance(event, JobQueued | JobFinished):
            job_id = event.job.id
        else:
            job_id = getattr(event, "job_id", "")
        s = self.state
        if job_id != s.job_id:
            return  # an earlier session's probe: the Queue shows it
        if isinstance(event, JobStarted):
            s.status = "running"
        elif isinstance(event, JobProgress):
            s.status = "running"
            s.progress = (event.step, event.total, event.eta_s)
        elif isinstance(event, JobResult):
            self.session.spawn(self._fetch_image(job_id, event.image))
            n = s.report.samples if s.report is not None else s.samples
            if (event.image.index + 1) % n == 0:  # a group is complete: its MMD is next
                self.session.spawn(self._refresh(job_id))
        elif isinstance(event, JobFinished):
            self._finished(event.job)

    def _finished(self, job: Job) -> None:
        s = self.state
        s.report = job.robustness
        s.status = job.state.value
        if job.state is JobState.failed:
            s.message = ("error", job.message or "The probe failed.")
        elif job.state is JobState.cancelled:
            s.message = ("info", "Cancelled: the groups finished so far are shown.")
        elif job.robustness is not None:
            best = job.robustness.most_robust()
            if best is not None:
                s.message = ("info", f"Most robust variant: “{best.prompt}”.")
        for image in job.results:
            if image.index not in s.images:
                self.session.spawn(self._fetch_image(job.id, image))

    def _measure(self, job: Job) -> None:
        """Seconds per image-step of a finished job (a probe or a generate job, whoever asked
        for it): what the next probe's estimate uses."""
        if job.state is not JobState.done or job.started_at is None or job.finished_at is None:
            return
        if job.kind == ROBUSTNESS_KIND:
            image_steps = len(job.results) * job.spec.params.base.steps
        elif job.kind == kind_of(GenerateJob):
            p = job.spec.params
            image_steps = p.steps * p.batch_size * p.batch_count
        else:
            return
        seconds = (job.finished_at - job.started_at).total_seconds()
        if image_steps > 0 and seconds > 0:
            self.state.seconds_per_step = seconds / image_steps

    async def _refresh(self, job_id: str) -> None:
        client = self.session.client
        if client is None:
            return
        try:
            job = await client.job(job_id)
        except EngineError as exc:
            log.info("could not refresh probe %s: %s", job_id, exc)
            return
        if job_id == self.state.job_id and job.robustness is not None:
            self.state.report = job.robustness

    async def _fetch_image(self, job_id: str, image: ResultImage) -> None:
        local = Path(image.path)
        data: bytes | None = None
        if not self.engine.remote and local.is_file():
            data = await asyncio.get_running_loop().run_in_executor(None, local.read_bytes)
        else:
            client = self.session.client
            if client is None:
                return
            try:
                data = await client.file(job_id, image.name)
            except EngineError as exc:
                log.info("could not fetch %s: %s", image.name, exc)
                return
        if job_id == self.state.job_id and data:
            self.state.add_image(image.index, data)
