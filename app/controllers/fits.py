"""The fits of the loaded model: Analytic-DPM's Γ_t, calibration's ε̄_t, BayesDiff's posterior.

The Sampler and Uncertainty panels ask for a fit (:meth:`FitsController.fit_now`); this
controller listens to the fit job kinds (``analytic_fit``, ``calibration_fit``,
``uncertainty_fit``), says when one is done, and keeps :class:`~app.state.sampler.FitsState`
(which fits the engine holds for the loaded model) current after each fit, connect and model
change.
"""

from __future__ import annotations

from PySide6.QtCore import QObject

from engine.protocol import (
    AnalyticFitJob,
    AnalyticFitParams,
    CalibrationFitJob,
    CalibrationFitParams,
    Event,
    FitData,
    Job,
    JobFinished,
    JobState,
    JobSubmit,
    UncertaintyFitJob,
    UncertaintyFitParams,
)

from ..client import ApiError, EngineClient
from ..session import ERROR, INFO, WARNING, EngineSession
from ..state import GenerationSettings, JobsState
from ..state.jobs import FIT_KINDS
from ..state.sampler import (
    ANALYTIC_FIT_STEPS,
    ANALYTIC_SAMPLES_PER_STEP,
    CALIBRATION_IMAGES,
    CALIBRATION_TIMESTEPS,
    FIT_NAMES,
    FitsState,
)


class FitsController(QObject):
    """Owned by :class:`app.controller.AppController` (``controller.fit_jobs``)."""

    def __init__(
        self,
        session: EngineSession,
        generation: GenerationSettings,
        fits: FitsState,
        jobs: JobsState,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.session, self.engine = session, session.engine
        self.generation, self.fits, self.jobs = generation, fits, jobs
        session.claim(FIT_KINDS, self.handle_event)
        session.on_sync(self._on_sync)
        self.engine.health_changed.connect(lambda _h: self._follow_model_fits())

    async def _on_sync(self, _client: EngineClient, _jobs: list[Job]) -> None:
        await self.refresh_fits()

    def handle_event(self, event: Event) -> None:
        """An event of a fit job: fits make no images, so only their end matters here."""
        if isinstance(event, JobFinished):
            job = event.job
            self._fit_finished(job)
            if job.state is JobState.failed:
                self.session.notice.emit(ERROR, f"Job failed: {job.message or 'no reason given'}")

    def fit_now(self, kind: str) -> None:
        """Queue an analytic or calibration fit of the loaded model (progress in the Queue)."""
        if not self.session.usable:
            self.session.notice.emit(WARNING, "The engine is not connected.")
            return
        if self.jobs.active_fit(kind) is not None:
            self.session.notice.emit(INFO, f"A {FIT_NAMES[kind]} fit is already in the queue.")
            return
        model = self.engine.active_model.id if self.engine.active_model else self.fits.model or None
        if kind == "uncertainty":
            submit = JobSubmit(job=UncertaintyFitJob(params=UncertaintyFitParams(model=model)))
        elif kind == "analytic":
            spacing = self.generation.option("timestep_spacing")
            steps = sorted({*ANALYTIC_FIT_STEPS, self.generation.steps})
            job = AnalyticFitJob(
                params=AnalyticFitParams(
                    model=model,
                    steps=steps,
                    samples_per_step=ANALYTIC_SAMPLES_PER_STEP,
                    timestep_spacing=spacing if isinstance(spacing, str) else None,
                )
            )
            submit = JobSubmit(job=job)
        else:
            submit = JobSubmit(
                job=CalibrationFitJob(
                    params=CalibrationFitParams(
                        model=model,
                        timesteps=CALIBRATION_TIMESTEPS,
                        data=FitData(count=CALIBRATION_IMAGES),
                    )
                )
            )
        self.session.spawn(self.session.submit_job(submit, f"{FIT_NAMES[kind]} fit"))

    def _fit_finished(self, job: Job) -> None:
        name = FIT_NAMES.get(FIT_KINDS.get(job.kind, ""), "")
        if job.state is JobState.done:
            fit = job.fit
            detail = f" on {fit.images} images" if fit is not None else ""
            self.session.notice.emit(INFO, f"{name} fit done{detail}.")
            if FIT_KINDS.get(job.kind) == "uncertainty":
                self.generation.clear_error("uncertainty")
        self.session.spawn(self.refresh_fits())

    async def refresh_fits(self) -> None:
        """Re-read the loaded model's fits (after connect, a model change or a fit job)."""
        client = self.session.client
        if client is None:
            return
        model = self.engine.active_model
        try:
            fits = await client.fits(model.id if model is not None else None)
        except ApiError as exc:
            self.fits.problem = exc.message
            return
        if client is not self.session.client:
            return
        self.fits.problem = ""
        self.fits.model = model.id if model is not None else (fits[0].model if fits else "default")
        self.fits.fits = fits

    def _follow_model_fits(self) -> None:
        model = self.engine.active_model
        if model is not None and model.id != self.fits.model and self.session.client is not None:
            self.session.spawn(self.refresh_fits())
