"""The job queue: FIFO within priority, one worker thread that owns the GPU, cancel per job.

State lives in :class:`engine.store.JobStore` (SQLite) so a restart resumes the queue; events go
out through :class:`engine.events.EventBus`. Job kinds plug in as runner functions
``run(job, ctx)`` that report through a :class:`JobContext`.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

from engine.errors import EngineError, JobCancelled, NotFound
from engine.events import EventBus
from engine.models.loader import LoadedModel, ModelManager
from engine.models.registry import ModelRegistry
from engine.outputs import remove_stranded_parts
from engine.protocol import (
    Job,
    JobFinished,
    JobPreview,
    JobProgress,
    JobQueued,
    JobResult,
    JobStarted,
    JobState,
    QueueChanged,
    ResultImage,
    utcnow,
)
from engine.store import JobStore

log = logging.getLogger(__name__)
Runner = Callable[[Job, "JobContext"], None]
#: A job running in this many engine crashes is failed instead of resumed again.
MAX_CRASHES = 3
#: The message of a running job whose cancel was asked for (it stops at its next step).
CANCELLING = "Cancelling: stops at the next step"


class JobContext:
    """What a running job may do: report progress, check for cancel, save results."""

    # Progress goes out at the preview's pace (and with each preview), so the step under the
    # preview is the step on the progress bar, not one behind it (issue 14); a new stage and
    # the last step are always announced.
    PROGRESS_INTERVAL_S = 0.25
    PREVIEW_INTERVAL_S = 0.25

    def __init__(self, queue: JobQueue, job: Job) -> None:
        self._queue = queue
        self.job = job
        self.output_dir = queue.output_dir
        #: The models folders: their loras/ and embeddings/ serve the prompt (engine.prompts).
        self.model_folders = list(queue.registry.folders)
        self._t0 = time.monotonic()
        self._done0 = 0
        self._last_progress = 0.0
        self._last_stage: str | None = None
        self._last_preview = 0.0

    def load_model(self, model_id: str | None) -> LoadedModel:
        return self._queue.load_model(model_id, self)

    def free_memory(self) -> None:
        self._queue.models._free()

    def check_cancel(self) -> None:
        if self._queue.cancel_requested(self.job.id):
            raise JobCancelled

    def begin(self, total: int, done: int = 0, stage: str = "sampling") -> None:
        self.job.total, self.job.step = total, done
        self._t0, self._done0 = time.monotonic(), done
        self._queue.publish(JobProgress(job_id=self.job.id, step=done, total=total, stage=stage))

    def progress(self, step: int, stage: str = "sampling") -> bool:
        """Report ``step`` of the job's total; returns True when a preview is due now."""
        self.job.step = step
        now = time.monotonic()
        rate_steps = step - self._done0
        eta = (now - self._t0) / rate_steps * (self.job.total - step) if rate_steps > 0 else None
        # Throttled, except that a new stage is always announced (a short stage such as
        # "smoothing" must still show in the panel) and so is the last step.
        new_stage = stage != self._last_stage
        # A preview due now goes out with its step's progress, so a client never shows a
        # preview of step 13 beside a progress bar at 12 (issue 14).
        preview_due = now - self._last_preview >= self.PREVIEW_INTERVAL_S
        if (
            now - self._last_progress >= self.PROGRESS_INTERVAL_S
            or step >= self.job.total
            or new_stage
            or preview_due
        ):
            self._last_progress, self._last_stage = now, stage
            self._queue.publish(
                JobProgress(
                    job_id=self.job.id, step=step, total=self.job.total, eta_s=eta, stage=stage
                )
            )
        if preview_due:
            self._last_preview = now
            return True
        return False

    def preview(self, step: int, index: int, png: tuple[str, int, int]) -> None:
        data, width, height = png
        self._queue.publish(
            JobPreview(
                job_id=self.job.id, step=step, index=index, width=width, height=height, png_b64=data
            )
        )

    def saved_indices(self) -> set[int]:
        """Indices of the images this job has already saved (a resumed job skips them)."""
        return {r.index for r in self.job.results if r.role == "image"}

    def batches_to_run(self, batch_count: int, batch_size: int) -> list[int]:
        """The batches that still miss an image, by index, not by count: a crash between two
        images of one batch leaves that batch to run again (only its missing images are
        saved), and a batch whose images are all saved is never run twice."""
        saved = self.saved_indices()
        return [
            b
            for b in range(batch_count)
            if any(b * batch_size + i not in saved for i in range(batch_size))
        ]

    def save(self) -> None:
        """Persist the job as it is now (e.g. a report that grew), without an event."""
        self._queue.store.put(self.job)

    def add_result(self, image: ResultImage) -> None:
        """Record a result that is already on disk, then announce it. A result of the same
        name replaces the old record (a resumed job saving again), so none is listed twice."""
        self.job.results = [r for r in self.job.results if r.name != image.name]
        self.job.results.append(image)
        self._queue.store.put(self.job)
        self._queue.publish(JobResult(job_id=self.job.id, image=image))


class JobQueue:
    def __init__(
        self,
        store: JobStore,
        bus: EventBus,
        models: ModelManager,
        registry: ModelRegistry,
        output_dir: Path,
        runners: dict[str, Runner],
        default_model: str | None = None,
    ) -> None:
        self.store, self.bus, self.models, self.registry = store, bus, models, registry
        self.output_dir = output_dir
        self.runners = runners
        self.default_model = default_model
        self.stage = ""  # "" | "loading" | "running"
        self._cond = threading.Condition()
        self._cancel: set[str] = set()
        self._running: str | None = None
        self._running_job: Job | None = None
        self._stop = False
        self._thread: threading.Thread | None = None
        self._on_state: Callable[[], None] = lambda: None
        #: Entered around each runner on the worker thread (the engine sets the fast path's).
        self.around_job: Callable[[Job], contextlib.AbstractContextManager] = lambda _job: (
            contextlib.nullcontext()
        )
        self._requeue_interrupted()

    # ------------------------------------------------------------------ public, any thread

    def submit(self, spec, priority: int = 0, fast_path: bool | None = None) -> Job:
        job = Job(
            id=secrets.token_hex(8),
            kind=spec.kind,
            state=JobState.queued,
            spec=spec,
            priority=priority,
            fast_path=fast_path,
            created_at=utcnow(),
        )
        with self._cond:
            self.store.put(job, order_key=self.store.insert_key(priority))
            self._cond.notify_all()
        self.publish(JobQueued(job=job))
        self._publish_order()
        return job

    def get(self, job_id: str) -> Job:
        if job_id == self._running and self._running_job is not None:
            return self._running_job
        job = self.store.get(job_id)
        if job is None:
            raise NotFound(f"No job {job_id!r}", field="id")
        return job

    def list(self) -> list[Job]:
        jobs = self.store.recent()
        if self._running_job is not None:
            jobs = [self._running_job if j.id == self._running else j for j in jobs]
        return jobs

    def cancel(self, job_id: str) -> Job:
        """A queued job is cancelled at once; the running one stops at its next step. The
        request is stored first, so an engine that dies before that step does not run the job
        again when it restarts."""
        with self._cond:
            job = self.get(job_id)
            if job.state == JobState.queued:
                job = self._finish(job, JobState.cancelled, "Cancelled before it started")
            elif job.state == JobState.running:
                self.store.request_cancel(job_id)
                self._cancel.add(job_id)
                job.message = CANCELLING
        self._publish_order()
        return job

    def move(self, job_id: str, position: int) -> list[Job]:
        with self._cond:
            order = self.store.queued_ids()
            if job_id not in order:
                raise EngineError(f"Job {job_id} is not queued, so it cannot be moved", "id")
            order.remove(job_id)
            order.insert(min(position, len(order)), job_id)
            self.store.reorder(order)
        self._publish_order()
        return self.store.queued()

    def cancel_requested(self, job_id: str) -> bool:
        """The running job must stop: the user cancelled it or the engine is shutting down."""
        return job_id in self._cancel or self._stop

    def publish(self, event) -> None:
        self.bus.publish(event)

    @property
    def running_id(self) -> str | None:
        return self._running

    def queued_count(self) -> int:
        return self.store.count_queued()

    # ------------------------------------------------------------------ worker

    def start(self, on_state: Callable[[], None] = lambda: None) -> None:
        self._on_state = on_state
        self._thread = threading.Thread(target=self._work, name="gpu-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread:
            self._thread.join(timeout)

    def abandon(self) -> None:
        """The process is about to exit without waiting for the running job (the app that
        started the engine is gone): put the job back in the queue, so that the next engine
        resumes it without counting a crash."""
        job = self._running_job
        if job is not None:
            record = self.store.get(job.id)
            if record is not None and record.state == JobState.running:
                record.state = JobState.queued
                self.store.put(record)

    def _work(self) -> None:
        while True:
            with self._cond:
                job = self.store.next_queued()
                while not self._stop and job is None:
                    self._cond.wait(0.5)
                    job = self.store.next_queued()
                if self._stop:
                    return
                job.state, job.started_at = JobState.running, job.started_at or utcnow()
                self.store.put(job)
                self._running, self._running_job = job.id, job
            self.stage = "running"
            self._on_state()
            self.publish(JobStarted(job_id=job.id))
            self._publish_order()
            state, message = self._run(job)
            with self._cond:
                if self._stop and state == JobState.cancelled and job.id not in self._cancel:
                    # Shutting down: leave it queued so the next engine resumes it.
                    job.state = JobState.queued
                    self.store.put(job)
                    self._running, self._running_job = None, None
                    return
                self._finish(job, state, message)
                self._cancel.discard(job.id)
                self._running, self._running_job = None, None
            self.stage = ""
            self._on_state()

    def _run(self, job: Job) -> tuple[JobState, str]:
        runner = self.runners.get(job.kind)
        if runner is None:
            return JobState.failed, f"This engine cannot run {job.kind!r} jobs"
        try:
            with self.around_job(job):
                runner(job, JobContext(self, job))
            return JobState.done, ""
        except JobCancelled:
            return JobState.cancelled, "Cancelled"
        except EngineError as exc:
            return JobState.failed, exc.message
        except Exception as exc:  # a bug or a library failure: keep serving
            if type(exc).__name__ == "OutOfMemoryError":  # torch's, without importing torch here
                self.models._free()
                return JobState.failed, (
                    f"Out of memory on {self.models.device}. Try a smaller size or batch size, "
                    "or unload other models; the engine keeps serving."
                )
            log.exception("job %s failed", job.id)
            return (
                JobState.failed,
                f"Unexpected error: {type(exc).__name__}: {exc} (see the engine log)",
            )

    def _finish(self, job: Job, state: JobState, message: str) -> Job:
        job.state, job.message, job.finished_at = state, message, utcnow()
        self.store.put(job)
        self.publish(JobFinished(job=job))
        return job

    def load_model(self, model_id: str | None, ctx: JobContext) -> LoadedModel:
        info = self.resolve_model(model_id)
        current = self.models.current
        if current is None or current.info.path != info.path:
            self.stage = "loading"
            self._on_state()
            ctx.begin(0, stage=f"loading {info.name}")
            try:
                return self.models.load(info)
            finally:
                self.stage = "running"
                self._on_state()
        return current

    def resolve_model(self, model_id: str | None):
        if model_id:
            return self.registry.get(model_id)
        if self.models.current is not None:
            return self.models.current.info
        if self.default_model:
            return self.registry.get(self.default_model)
        info = self.registry.default()
        if info is None:
            raise EngineError(
                "No model is available. Put a diffusers folder or a .safetensors checkpoint "
                "into a models folder (see Settings), or start the engine with --model PATH.",
                "model",
            )
        return info

    # ------------------------------------------------------------------ helpers

    def _requeue_interrupted(self) -> None:
        """Jobs the last engine process was running when it died: each goes back to the front
        of the queue, unless the user had cancelled it or it has now crashed the engine
        :data:`MAX_CRASHES` times. Half-written images (``*.part``) are removed either way."""
        interrupted = []
        for job in self.store.by_state(JobState.running):
            for part in remove_stranded_parts(self.output_dir, job):
                log.info("removed the half-written %s of interrupted job %s", part.name, job.id)
            crashes = self.store.count_crash(job.id)
            if self.store.cancel_requested(job.id):
                self._finish(
                    job, JobState.cancelled, "Cancelled (the engine stopped before the job could)"
                )
            elif crashes >= MAX_CRASHES:
                log.error("job %s was running in %d engine crashes: failed", job.id, crashes)
                self._finish(
                    job,
                    JobState.failed,
                    (
                        f"The engine stopped {crashes} times while running this job, so it was not "
                        "started again. Its saved images are kept. The engine log says what "
                        "happened; try smaller settings or another model."
                    ),
                )
            else:
                job.state = JobState.queued
                self.store.put(job)
                interrupted.append(job)
        if interrupted:
            ids = [j.id for j in interrupted]
            self.store.reorder(ids + [j.id for j in self.store.queued() if j.id not in ids])
            log.info("resuming %d interrupted job(s)", len(interrupted))

    def _publish_order(self) -> None:
        self.publish(QueueChanged(order=self.store.queued_ids()))
