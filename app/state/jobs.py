"""The engine's queue as the app sees it, kept current by protocol events."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime

from PySide6.QtCore import QObject, Signal

from engine.protocol import (
    FIT_JOB_KINDS,
    EngineStatus,
    Event,
    GenerateJob,
    GenerateParams,
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
    RobustnessJob,
    SamplerGridJob,
    SamplerGridParams,
    VideoEditJob,
    kind_of,
)

from .video import fps_text

#: Job kinds that fit a model's statistics, and the fit each makes ('analytic', 'calibration',
#: 'uncertainty': what the Sampler panel calls it). The tables below are keyed by the fit.
FIT_KINDS = FIT_JOB_KINDS
_FIT_TITLES = {
    "analytic": "Analytic-DPM fit (the model's noise per step)",
    "calibration": "Calibration fit (the model's noise bias)",
    "uncertainty": "Uncertainty fit (how unsure the model is)",
}
#: The maths behind each fit, for the card's tooltip (titles stay in plain words).
FIT_MATHS = {
    "analytic": "Γ_t = E‖ε̂(x_t, t)‖² / d per timestep (Analytic-DPM, Bao et al. 2022, "
    "eq. 7): sets the optimal reverse variance",
    "calibration": "the per-step mean of the predicted noise ε̂, subtracted while sampling "
    "(Pang et al. 2023)",
    "uncertainty": "a last-layer Laplace posterior over the UNet's final conv (BayesDiff, "
    "Kou et al. 2024)",
}
#: What a fit job's card shows where an image job shows its picture: the statistic it fits.
_FIT_GLYPHS = {"analytic": "Γ", "calibration": "ε̄", "uncertainty": "σ²"}

#: How many finished jobs the Queue dock keeps listing.
KEEP_FINISHED = 30


def step_text(step: int, total: int) -> str:
    """ "Step 13/25" — the one wording of a job's step, for the status bar, the Queue card and
    the canvas's preview caption alike (they read the same step and total)."""
    return f"Step {step}/{total}" if total else "Starting…"


@dataclass
class JobItem:
    """One job: what was asked, where it stands, and what it produced so far."""

    id: str
    state: JobState
    params: GenerateParams | None
    created_at: datetime
    step: int = 0
    total: int = 0
    eta_s: float | None = None
    stage: str = ""
    message: str = ""
    results: list[ResultImage] = field(default_factory=list)
    #: Latest preview PNG per image index while running.
    previews: dict[int, bytes] = field(default_factory=dict)
    finished_at: datetime | None = None
    #: PNG for the Queue dock: the latest preview while running, then the first result
    #: shrunk to a card's size (:func:`app.library.small_png`: not the full result's bytes).
    thumbnail: bytes | None = None
    thumbnail_final: bool = False
    kind: str = kind_of(GenerateJob)
    #: For ``sampler_grid`` jobs: the grid as the engine accepted it (seed resolved).
    grid: SamplerGridParams | None = None
    #: For fit jobs: the model they fit (None = the loaded one).
    model: str | None = None
    #: For video_edit jobs: what the Queue card says ("Video edit (LOVECon): <target prompt>").
    label: str = ""

    @classmethod
    def from_job(cls, job: Job) -> JobItem:
        params = job.spec.params if isinstance(job.spec, GenerateJob) else None
        grid = job.spec.params if isinstance(job.spec, SamplerGridJob) else None
        model = getattr(job.spec.params, "model", None) if job.kind in FIT_KINDS else None
        return cls(
            id=job.id,
            state=job.state,
            params=params,
            created_at=job.created_at,
            step=job.step,
            total=job.total,
            message=job.message,
            results=list(job.results),
            finished_at=job.finished_at,
            kind=job.kind,
            grid=grid,
            model=model,
            label=_label(job),
        )

    @property
    def image_count(self) -> int:
        """How many images the job makes in all (a grid: its cells and the assembled sheet)."""
        if self.grid is not None:
            return len(self.grid.rows()) * len(self.grid.steps) + 1
        return self.params.batch_size * self.params.batch_count if self.params else 1

    def images_text(self) -> str:
        """Which images the running job is making, as the status bar says it; "" for one.

        A batch renders together ("4 images"), batches one after another ("Images 5–8 of 8"),
        single images one at a time ("Image 2 of 3"); a grid counts its cells, not the
        assembled sheet ("Cell 2 of 4").
        """
        if self.grid is not None:
            return f"Cell {min(self.cells_done + 1, self.cell_count)} of {self.cell_count}"
        if self.params is None:
            return ""
        size, count = self.params.batch_size, self.params.batch_count
        n = size * count
        if n <= 1:
            return ""
        if size == 1:
            return f"Image {min(len(self.results) + 1, n)} of {n}"
        if count == 1:
            return f"{n} images"
        first = min(len(self.results) // size, count - 1) * size
        return f"Images {first + 1}–{first + size} of {n}"

    @property
    def fit_kind(self) -> str | None:
        """'analytic', 'calibration' or 'uncertainty' for fit jobs."""
        return FIT_KINDS.get(self.kind)

    @property
    def glyph(self) -> str:
        """The symbol a card shows in place of a thumbnail (fit jobs make no image)."""
        return _FIT_GLYPHS.get(self.fit_kind or "", "")

    @property
    def cell_count(self) -> int:
        return len(self.grid.rows()) * len(self.grid.steps) if self.grid is not None else 0

    @property
    def cells_done(self) -> int:
        return sum(1 for r in self.results if r.cell is not None)

    def summary(self) -> str:
        """The Queue card's second line for jobs that are not plain generations."""
        if self.grid is not None:
            g = self.grid
            n_s, n_n = len(g.samplers), len(g.steps)
            parts = [
                (
                    f"{n_s} sampler{'s' if n_s != 1 else ''} × {n_n} step count"
                    f"{'s' if n_n != 1 else ''}"
                )
            ]
            if len(g.cfg_scales) > 1:
                parts[0] += f" × {len(g.cfg_scales)} CFG"
            parts.append(f"{g.base.width}×{g.base.height}")
            if self.state is JobState.running:
                parts.append(
                    f"cell {min(self.cells_done + 1, self.cell_count)} of {self.cell_count}"
                )
            else:
                parts.append(f"{self.cell_count} cells")
            return " · ".join(parts)
        if self.label:
            video = next((r.video for r in self.results if r.video is not None), None)
            if self.state is JobState.running and self.stage:
                return self.stage
            if video is not None:
                return f"{video.frames} frames · {fps_text(video.fps)} fps"
            return self.state.value
        if self.fit_kind is not None:
            return f"{self.model or 'loaded model'} · {self.stage or self.state.value}"
        return self.state.value

    @property
    def progress(self) -> float:
        """0..1 for the whole job: the engine counts steps across all batches."""
        if self.state is JobState.done:
            return 1.0
        if not self.total:
            return 0.0
        return max(0.0, min(1.0, self.step / self.total))

    def preview_slot(self, index: int) -> int:
        """The job-wide image index of a preview whose ``index`` counts within its batch.

        The engine numbers preview latents within the batch being sampled, and results across
        the job; the batch being sampled is the one after the results so far.
        """
        per_batch = self.params.batch_size if self.params else 1
        if index >= per_batch:
            return index  # already job-wide
        return (len(self.results) // per_batch) * per_batch + index

    @property
    def title(self) -> str:
        """A short, single-line description: the prompt, or what kind of job it is."""
        if self.fit_kind is not None:
            return _FIT_TITLES[self.fit_kind]
        if self.label:
            return self.label
        params = self.grid.base if self.grid is not None else self.params
        text = (params.prompt if params else "").strip().replace("\n", " ") or "(empty prompt)"
        return f"Compare: {text}" if self.grid is not None else text


def _label(job: Job) -> str:
    """The Queue card's title for jobs that are not plain generations ("" for those)."""
    if isinstance(job.spec, RobustnessJob):
        return f"Robustness probe: {job.spec.params.base.prompt.strip()}"
    if not isinstance(job.spec, VideoEditJob):
        return ""
    p = job.spec.params
    method = {"lovecon": "LOVECon", "controlvideo": "ControlVideo"}.get(p.method, p.method)
    return f"Video edit ({method}): {p.target_prompt.strip()}"


class JobsState(QObject):
    """Jobs by id, in display order: running first, then queued in queue order, then finished."""

    #: The list of jobs or their order changed (add, remove, reorder, state change).
    changed = Signal()
    #: One job's progress/preview/results changed; argument is the job id.
    job_updated = Signal(str)
    #: A preview image arrived: (job id, image index, png bytes).
    preview = Signal(str, int, bytes)
    #: A finished image was announced: (job id, image).
    result = Signal(str, object)
    #: A job finished: (job id, state). Failed jobs carry their message on the item.
    finished = Signal(str, object)

    def __init__(self) -> None:
        super().__init__()
        self._jobs: dict[str, JobItem] = {}
        self._queue_order: list[str] = []

    # ----------------------------------------------------------------- reading
    def get(self, job_id: str) -> JobItem | None:
        return self._jobs.get(job_id)

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def ordered(self) -> list[JobItem]:
        """Running, then queued (next first), then finished (newest first)."""
        running = [j for j in self._jobs.values() if j.state is JobState.running]
        rank = {jid: i for i, jid in enumerate(self._queue_order)}
        queued = sorted(
            (j for j in self._jobs.values() if j.state is JobState.queued),
            key=lambda j: (rank.get(j.id, len(rank)), j.created_at),
        )
        done = sorted(
            (j for j in self._jobs.values() if j.state.finished),
            key=lambda j: j.finished_at or j.created_at,
            reverse=True,
        )
        return running + queued + done

    def queued_ids(self) -> list[str]:
        return [j.id for j in self.ordered() if j.state is JobState.queued]

    @property
    def running(self) -> JobItem | None:
        return next((j for j in self._jobs.values() if j.state is JobState.running), None)

    def active_fit(self, fit_kind: str) -> JobItem | None:
        """The queued or running fit job of this kind ('analytic' or 'calibration'), if any."""
        return next(
            (j for j in self.ordered() if j.fit_kind == fit_kind and not j.state.finished), None
        )

    def fit_progress(self, fit_kind: str) -> tuple[str, JobState, int | None] | None:
        """What a panel shows of the active fit of this kind: (job id, state, whole percent or
        None before the engine counts steps), or None when no such fit is queued or running.
        Panels compare it to what they last drew, so other jobs' progress costs them nothing."""
        job = self.active_fit(fit_kind)
        if job is None:
            return None
        return job.id, job.state, round(job.progress * 100) if job.total else None

    @property
    def active_count(self) -> int:
        """Jobs not finished yet (running or queued)."""
        return sum(1 for j in self._jobs.values() if not j.state.finished)

    # ----------------------------------------------------------------- writing
    def reset(self, jobs: list[Job]) -> None:
        """Replace everything with the engine's list (on connect and reconnect)."""
        self._jobs = {j.id: JobItem.from_job(j) for j in jobs}
        self._queue_order = [j.id for j in jobs if j.state is JobState.queued]
        self._trim()
        self.changed.emit()

    def upsert(self, job: Job) -> JobItem:
        """Add or refresh one job from a full :class:`Job` (e.g. the answer to a submit)."""
        item = self._jobs.get(job.id)
        fresh = JobItem.from_job(job)
        if item is None:
            self._jobs[job.id] = fresh
            if job.state is JobState.queued and job.id not in self._queue_order:
                self._queue_order.append(job.id)
            self._trim()
            self.changed.emit()
            return fresh
        if _stage(job.state) < _stage(item.state):
            # A snapshot older than events already applied: the answer to a submit (queued)
            # can arrive after the job's JobStarted and JobProgress; a job never goes back.
            job = job.model_copy(update={"state": item.state, "message": item.message})
        state_changed = item.state is not job.state
        item.state, item.message = job.state, job.message
        item.finished_at = job.finished_at or item.finished_at
        if job.total:
            item.step, item.total = job.step, job.total
        known = {r.name for r in item.results}
        item.results += [r for r in job.results if r.name not in known]
        if state_changed:
            self.changed.emit()
        self.job_updated.emit(job.id)
        return item

    def apply(self, event: Event) -> None:
        """Fold one engine event into the state."""
        if isinstance(event, JobQueued):
            self.upsert(event.job)
        elif isinstance(event, JobStarted):
            item = self._jobs.get(event.job_id)
            if item is not None and item.state is not JobState.running:
                item.state, item.step = JobState.running, 0
                self.changed.emit()
        elif isinstance(event, JobProgress):
            item = self._jobs.get(event.job_id)
            if item is not None:
                if item.state is JobState.queued:
                    item.state = JobState.running
                    self.changed.emit()
                item.step, item.total, item.eta_s = event.step, event.total, event.eta_s
                item.stage = event.stage
                self.job_updated.emit(item.id)
        elif isinstance(event, JobPreview):
            data = base64.b64decode(event.png_b64)
            item = self._jobs.get(event.job_id)
            if item is not None:
                item.previews[event.index] = data
                if not item.thumbnail_final:
                    item.thumbnail = data
                    self.job_updated.emit(item.id)
            self.preview.emit(event.job_id, event.index, data)
        elif isinstance(event, JobResult):
            item = self._jobs.get(event.job_id)
            if item is not None and all(r.name != event.image.name for r in item.results):
                item.results.append(event.image)
                item.previews.pop(event.image.index, None)
                self.job_updated.emit(item.id)
            self.result.emit(event.job_id, event.image)
        elif isinstance(event, JobFinished):
            item = self.upsert(event.job)
            item.previews.clear()
            item.eta_s = None
            if event.job.id in self._queue_order:
                self._queue_order.remove(event.job.id)
            self._trim()
            self.changed.emit()
            self.finished.emit(event.job.id, event.job.state)
        elif isinstance(event, QueueChanged):
            self._queue_order = list(event.order)
            self.changed.emit()
        elif isinstance(event, EngineStatus):
            pass  # engine status is EngineState's business

    def set_order(self, jobs: list[Job]) -> None:
        """Apply the answer of a move: the queued jobs in their new order."""
        for job in jobs:
            if job.id not in self._jobs:
                self._jobs[job.id] = JobItem.from_job(job)
        self._queue_order = [j.id for j in jobs if j.state is JobState.queued]
        self.changed.emit()

    def has_picture(self, job_id: str) -> bool:
        """The job's card already shows a finished image (or the job is not listed)."""
        item = self._jobs.get(job_id)
        return item is None or item.thumbnail_final

    def set_thumbnail(self, job_id: str, png: bytes) -> None:
        """A finished image to represent the job (the controller has its bytes)."""
        item = self._jobs.get(job_id)
        if item is not None and not item.thumbnail_final:
            item.thumbnail, item.thumbnail_final = png, True
            self.job_updated.emit(job_id)

    def reorder(self, queued_ids: list[str]) -> None:
        """Show the queued jobs in this order (optimistically, before the engine confirms)."""
        self._queue_order = list(queued_ids)
        self.changed.emit()

    def remove_finished(self) -> None:
        """Clear finished jobs from the list (they stay in the history)."""
        self._jobs = {k: v for k, v in self._jobs.items() if not v.state.finished}
        self.changed.emit()

    def _trim(self) -> None:
        finished = [j for j in self.ordered() if j.state.finished]
        for item in finished[KEEP_FINISHED:]:
            del self._jobs[item.id]


def _stage(state: JobState) -> int:
    """How far along a job in ``state`` is: queued 0, running 1, finished 2. Only a reconnect's
    full list (:meth:`JobsState.reset`) may move a job back (a restarted engine requeues it)."""
    return 2 if state.finished else int(state is JobState.running)


def canvas_status(item: JobItem | None, ahead: int = 0) -> str:
    """What the canvas says over an empty slot of the job it follows, from the job's state
    (not a stale "Waiting for the engine…" while the engine works on it)."""
    if item is None:
        return "Waiting for the engine…"  # sent, not yet acknowledged
    if item.state is JobState.queued:
        return f"Queued · {ahead} job{'s' if ahead != 1 else ''} ahead" if ahead else "Queued"
    if item.state is JobState.running:
        return step_text(item.step, item.total) if item.step else "Starting…"
    if item.state is JobState.cancelled:
        return "Cancelled: nothing was saved for this image"
    if item.state is JobState.failed:
        return f"Failed: {item.message or 'no reason given'}"
    return ""


def cancelled_note(item: JobItem | None) -> str:
    """The mark a preview of a cancelled job carries (its image was never finished)."""
    if item is None or item.state is not JobState.cancelled:
        return ""
    return "Cancelled · this preview was not saved"
