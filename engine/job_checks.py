"""Submit-time checks of each job kind: a job is refused (422, naming the field) the way it
would fail when run, before it is queued. One ``check_<kind>(engine, job) -> job`` per kind,
named in engine/kinds.py's table; each returns the job as it will run (random seeds resolved).
Run in a worker thread (they read the disk and the queue database)."""

from __future__ import annotations

from engine.architecture import Architecture, Method
from engine.errors import EngineError
from engine.limits import prompt_problems
from engine.protocol import GenerateJob, RobustnessJob, SamplerGridJob, VideoEditJob
from engine.samplers import check_family, check_options


def check_generate(engine, job: GenerateJob) -> GenerateJob:
    _check_networks(engine, job.params, "job.params")
    job = _check_generate(engine, job)
    if job.params.uncertainty is not None:
        job = _check_uncertainty(engine, job)
    return job


def check_sampler_grid(engine, job: SamplerGridJob) -> SamplerGridJob:
    _check_networks(engine, job.params.base, "job.params.base")
    return _check_grid(engine, job)


def check_robustness(engine, job: RobustnessJob) -> RobustnessJob:
    _check_prompts(job.params.base, "job.params.base")
    _check_networks(engine, job.params.base, "job.params.base")
    return _check_robustness(engine, job)


def check_video_edit(engine, job: VideoEditJob) -> VideoEditJob:
    from engine.video.routes import check_video_edit

    _check_prompts(job.params, "job.params")
    info = _check_model(engine, job.params.model, "job.params.model")
    problem = Architecture.parse(info.architecture).why_not(Method.VIDEO_EDIT)
    if problem:  # SDXL, SD3, Flux: before the ControlNet search, whose message would mislead
        raise EngineError(problem, "job.params.model")
    return check_video_edit(engine, job)


def check_fit(engine, job):
    """The analytic, calibration and uncertainty fits: the model they fit must load, and be
    one the fits are written for (engine/architecture.py)."""
    from engine.fit_jobs import check_fits

    check_fits(_check_model(engine, job.params.model, "job.params.model"), "job.params.model")
    return job


def _check_model(engine, model: str | None, field: str):
    """The model a job will use (named, loaded or default): refused now if it is missing or if
    /v1/models already says why it cannot load, not when the job runs."""
    try:
        info = engine.queue.resolve_model(model)
    except EngineError as exc:
        raise EngineError(exc.message, field) from None
    if info.problem:
        raise EngineError(f"{info.name} cannot be used: {info.problem}", field)
    return info


def _check_prompts(params, field: str) -> None:
    for name, message in prompt_problems(params, field):
        label = name.rsplit(".", 1)[-1].replace("_", " ").capitalize()
        raise EngineError(f"{label} {message}", name)


def _check_networks(engine, params, field: str) -> None:
    """A malformed, missing or incompatible <lora:…> tag is refused now, naming it and the
    base it fits (engine/prompts/job.py)."""
    from engine.prompts.job import check_prompts

    try:
        info = engine.queue.resolve_model(params.model)
    except EngineError:
        return  # the model check says why
    try:
        check_prompts([params.prompt, params.negative_prompt], info, engine.registry.folders)
    except EngineError as exc:
        raise EngineError(exc.message, f"{field}.prompt") from None


def _check_calibration(engine, params, field: str) -> None:
    """A calibrated recipe needs the model's calibration fit (engine.sampling.prepare)."""
    if not params.calibrated:
        return
    info = _check_model(engine, params.model, f"{field}.model")
    if engine.fits.calibration(engine.fits.model_hash(info), params.calibration_mean) is None:
        raise EngineError(
            f"Calibration of {info.name} is not fitted yet. Run a calibration fit first (job "
            "kind 'calibration_fit'), or turn calibration off.",
            f"{field}.calibrated",
        )


def _check_sampler(params, field: str) -> None:
    for name, message in check_options(params):
        raise EngineError(message, f"{field}.{name}")


def _check_family(params, info, field: str) -> None:
    """An ε-sampler on a flow model, a flow sampler on SD, and BayesDiff/Analytic-DPM/
    calibration on flow models are refused with the reason (engine.samplers.check_family)."""
    for name, message in check_family(params, info.architecture):
        raise EngineError(message, f"{field}.{name}")


def _random_seed(params):
    if params.seed < 0:
        import secrets

        params = params.with_seed(secrets.randbelow(2**32))
    return params


def _check_generate(engine, job: GenerateJob) -> GenerateJob:
    params = job.params
    _check_prompts(params, "job.params")
    _check_sampler(params, "job.params")
    info = _check_model(engine, params.model, "job.params.model")
    _check_family(params, info, "job.params")
    _check_calibration(engine, params, "job.params")
    return job.model_copy(update={"params": _random_seed(params)})


def _check_robustness(engine, job: RobustnessJob) -> RobustnessJob:
    """422 for a prompt with no words or a sampler that cannot run; a random seed resolved."""
    from engine.robustness_protocol import split_words

    params = job.params
    if not split_words(params.base.prompt):
        raise EngineError(
            "The prompt has no words to probe: write a prompt first.", "job.params.base.prompt"
        )
    _check_sampler(params.base, "job.params.base")
    info = _check_model(engine, params.base.model, "job.params.base.model")
    _check_family(params.base, info, "job.params.base")
    return job.model_copy(
        update={"params": params.model_copy(update={"base": _random_seed(params.base)})}
    )


def _check_uncertainty(engine, job: GenerateJob) -> GenerateJob:
    """422 unless the sampler carries BayesDiff uncertainty and the model has a fit."""
    from engine.uncertainty.generate import uncertainty_problem

    info = engine.queue.resolve_model(job.params.model)
    problem = uncertainty_problem(job.params, engine.fits, info)
    if problem:
        raise EngineError(problem[1], f"job.params.{problem[0]}")
    u = job.params.uncertainty
    if u is not None and u.variation_seed < 0:
        import secrets

        group = u.model_copy(update={"variation_seed": secrets.randbelow(2**32)})
        params = job.params.model_copy(update={"uncertainty": group})
        job = job.model_copy(update={"params": params})
    return job


def _check_grid(engine, job: SamplerGridJob) -> SamplerGridJob:
    grid = job.params
    for i, (sampler, cfg) in enumerate(grid.rows()):
        for name, message in check_options(grid.cell_params(sampler, grid.steps[0], cfg)):
            field = "sampler" if name == "sampler" else name
            raise EngineError(
                message, f"job.params.samplers.{i // max(1, len(grid.cfg_scales))}.{field}"
            )
    _check_prompts(grid.base, "job.params.base")
    info = _check_model(engine, grid.base.model, "job.params.base.model")
    for i, (sampler, cfg) in enumerate(grid.rows()):
        for name, message in check_family(
            grid.cell_params(sampler, grid.steps[0], cfg), info.architecture
        ):
            field = f"samplers.{i // max(1, len(grid.cfg_scales))}" if name == "sampler" else name
            raise EngineError(message, f"job.params.{field}")
    _check_calibration(engine, grid.base, "job.params.base")
    grid = grid.model_copy(update={"base": _random_seed(grid.base)})
    return job.model_copy(update={"params": grid})
