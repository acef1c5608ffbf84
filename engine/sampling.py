"""From a recipe to a configured sampler: scheduler, step arguments, fits, calibration.

Shared by the ``generate`` and ``sampler_grid`` jobs, so a grid cell renders exactly as the same
recipe would on its own.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from engine.errors import EngineError
from engine.protocol import GenerateParams
from engine.samplers import check_family, check_options, effective_params


@dataclass
class SamplerSetup:
    scheduler: Any
    call_kwargs: dict[str, Any] = field(default_factory=dict)
    calibration: Any = None  # engine.calibration.CalibrationTable

    def context(self, pipe, guidance_scale: float):
        """Calibrate the UNet's output for the duration of one pipeline call, if asked."""
        if self.calibration is None:
            return contextlib.nullcontext()
        from engine.calibration import calibrated

        cfg = guidance_scale > 1 and getattr(pipe.unet.config, "time_cond_proj_dim", None) is None
        config = self.scheduler.config
        alphas = getattr(self.scheduler, "alphas_cumprod", None)
        return calibrated(
            pipe.unet,
            self.calibration,
            cfg=cfg,
            prediction_type=config.get("prediction_type", "epsilon"),
            alphas_cumprod=alphas,
        )


def prepare(loaded, p: GenerateParams, fits) -> SamplerSetup:
    """Build the scheduler for ``p`` from the loaded model's config; attach Γ_t and the
    calibration table from ``fits`` (an :class:`engine.fits.FitStore`) where the recipe needs
    them, or fail with a message that says which fit job to run."""
    problems = check_options(p) + check_family(p, loaded.info.architecture)
    if problems:
        name, message = problems[0]
        raise EngineError(message, f"params.{name}")
    spec, eff = effective_params(p)
    scheduler = spec.build(loaded.base_scheduler_config, eff)
    setup = SamplerSetup(scheduler, spec.call_kwargs(eff))
    needs_hash = spec.needs_fit == "analytic" or p.calibrated
    model_hash = fits.model_hash(loaded.info) if needs_hash and fits is not None else None
    if spec.needs_fit == "analytic":
        gammas, data_range = fits.gammas(model_hash) if model_hash else ({}, None)
        scheduler.set_gammas(gammas)
        if data_range is not None:
            scheduler.register_to_config(data_range=data_range)
        if eff.timestep_spacing == "optimal":
            scheduler.set_trajectories(fits.trajectories(model_hash) if model_hash else {})
            if p.steps not in scheduler.trajectories:
                raise EngineError(
                    f"{spec.name} with the optimal trajectory needs it for {p.steps} steps, "
                    f"which is not fitted yet. Run an analytic fit with timestep_spacing "
                    f"'optimal' and steps [{p.steps}] (job kind 'analytic_fit'), then sample "
                    "again.",
                    "params.timestep_spacing",
                )
        scheduler.set_timesteps(p.steps)
        if scheduler.missing_gammas():
            spacing = f", timestep_spacing {p.timestep_spacing}" if p.timestep_spacing else ""
            raise EngineError(
                f"{spec.name} needs Γ_t of {loaded.info.name} for {p.steps} steps{spacing}, "
                f"which is not fitted yet. Run an analytic fit first (job kind 'analytic_fit' "
                f"with steps [{p.steps}]), then sample again.",
                "params.sampler",
            )
    if p.calibrated:
        table = fits.calibration(model_hash, p.calibration_mean) if model_hash else None
        if table is None:
            raise EngineError(
                f"Calibration of {loaded.info.name} is not fitted yet. Run a calibration fit "
                "first (job kind 'calibration_fit'), or turn calibration off.",
                "params.calibrated",
            )
        setup.calibration = table
    return setup


def steps_done(pipe, i: int, steps: int) -> int:
    """Recipe steps completed after the pipeline's ``i``-th callback. Heun and DPM2 run two
    scheduler iterations per step (2·steps − 1 timesteps): progress counts recipe steps."""
    timesteps = getattr(pipe.scheduler, "timesteps", None)
    n = len(timesteps) if timesteps is not None and len(timesteps) else steps
    return min(steps, max(1, round((i + 1) * steps / n)))
