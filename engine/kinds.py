"""Every job kind the engine runs, as one table: spec class, submit-time check, runner.

A row says, for one kind:

- ``spec`` — its request class, a member of :data:`engine.protocol.JobSpec`; the kind's name
  is that class's ``kind`` tag (:func:`engine.protocol.kind_of`), so it is written once;
- ``check(engine, job) -> job`` — refuses it at ``POST /v1/jobs`` the way it would fail when
  run (engine/job_checks.py) and returns it as it will run (random seeds resolved);
- ``runner(engine) -> Runner`` — the function the GPU worker calls with ``(job, ctx)``, bound
  to the engine's stores (fits, uploads, caches); imported only when the engine is built, so
  this module stays light for the server;
- ``compiled(spec) -> bool`` — whether the job may use the compiled UNet/VAE
  (engine/fast_path.py); most kinds change things inside the UNet and run eager.

The server (the submit check, and the tags it strips from validation errors' field paths), the
service (the queue's runners) and the fast path read this table; the app switches on the names
:mod:`engine.protocol` exports (``JOB_KINDS``, ``FIT_JOB_KINDS``, ``kind_of``).

A new kind (img2img, say) is its spec class in ``JobSpec``, its ``check_<kind>`` in
engine/job_checks.py, its ``run_<kind>`` module, and one row here. tests/engine/test_kinds.py
checks the table against ``JobSpec`` and that no other module spells a kind's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from engine import job_checks
from engine.protocol import (
    AnalyticFitJob,
    CalibrationFitJob,
    GenerateJob,
    RobustnessJob,
    SamplerGridJob,
    UncertaintyFitJob,
    VideoEditJob,
    kind_of,
)


def _eager(_spec: Any) -> bool:
    return False


@dataclass(frozen=True)
class JobKind:
    spec: type
    check: Callable[[Any, Any], Any]
    runner: Callable[[Any], Callable[[Any, Any], None]]
    compiled: Callable[[Any], bool] = _eager

    @property
    def name(self) -> str:
        return kind_of(self.spec)


# Runner factories: each imports its job module (torch, diffusers) only when the engine is built.


def _generate(engine):
    from engine.generate import run_generate

    return partial(run_generate, fits=engine.fits)


def _sampler_grid(engine):
    from engine.sampler_grid import run_sampler_grid

    return partial(run_sampler_grid, fits=engine.fits)


def _video_edit(engine):
    from engine.video.edit_job import run_video_edit

    return partial(
        run_video_edit,
        uploads=engine.uploads,
        cache_dir=engine.config.data_dir / "cache",
        models_dirs=engine.config.models_dirs,
    )


def _analytic_fit(engine):
    from engine.fit_jobs import run_analytic_fit

    return partial(run_analytic_fit, fits=engine.fits)


def _calibration_fit(engine):
    from engine.fit_jobs import run_calibration_fit

    return partial(run_calibration_fit, fits=engine.fits)


def _uncertainty_fit(engine):
    from engine.uncertainty.fit_job import run_uncertainty_fit

    return partial(run_uncertainty_fit, fits=engine.fits)


def _prompt_robustness(engine):
    from engine.robustness.job import run_prompt_robustness

    return partial(run_prompt_robustness, fits=engine.fits)


def _generate_compiled(spec: GenerateJob) -> bool:
    """Text-to-image runs compiled; BayesDiff maps and variations run eager (a pre-hook reads
    conv_out's input, which a compiled graph would guard on and recompile for)."""
    return spec.params.uncertainty is None


ROWS: tuple[JobKind, ...] = (
    JobKind(GenerateJob, job_checks.check_generate, _generate, _generate_compiled),
    JobKind(SamplerGridJob, job_checks.check_sampler_grid, _sampler_grid, lambda _spec: True),
    JobKind(VideoEditJob, job_checks.check_video_edit, _video_edit),
    JobKind(AnalyticFitJob, job_checks.check_fit, _analytic_fit),
    JobKind(CalibrationFitJob, job_checks.check_fit, _calibration_fit),
    JobKind(UncertaintyFitJob, job_checks.check_fit, _uncertainty_fit),
    JobKind(RobustnessJob, job_checks.check_robustness, _prompt_robustness),
)

#: The rows by kind name.
KINDS: dict[str, JobKind] = {row.name: row for row in ROWS}


def runners(engine) -> dict[str, Callable[[Any, Any], None]]:
    """The queue's runner of every kind, bound to ``engine``'s stores."""
    return {row.name: row.runner(engine) for row in ROWS}
