"""The HTTP + WebSocket front of the engine (FastAPI). Transport only: the work is in jobs."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse

from engine import request_errors
from engine.api_docs import add_docs
from engine.auth import TokenGate  # noqa: F401 - where engine.cli and scripts import it
from engine.errors import EngineError, NotFound
from engine.limits import BodyLimit, prompt_problems
from engine.protocol import (
    API_VERSION,
    EngineStatus,
    ErrorBody,
    FitInfo,
    GenerateJob,
    Health,
    Job,
    JobSubmit,
    LoadModelRequest,
    ModelInfo,
    MoveJob,
    RobustnessJob,
    SamplerGridJob,
    SamplerInfo,
    VideoEditJob,
)
from engine.samplers import check_family, check_options, sampler_infos

log = logging.getLogger(__name__)
PREFIX = f"/{API_VERSION}"
_JOB_KIND_TAGS = {"generate", "analytic_fit", "calibration_fit", "sampler_grid", "video_edit",
                  "uncertainty_fit", "prompt_robustness"}


def create_app(engine) -> FastAPI:
    """``engine`` is an :class:`engine.service.Engine`: queue, models, registry, bus."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine.bus.bind(asyncio.get_running_loop())
        engine.start()
        yield
        await asyncio.to_thread(engine.stop)

    app = FastAPI(
        title="Sfumato engine",
        version=engine.version,
        lifespan=lifespan,
        description="Every request needs the engine's token (Authorization: Bearer …).",
        docs_url=None,  # engine.api_docs serves /docs without a CDN
        redoc_url=None,
    )
    add_docs(app)

    @app.exception_handler(EngineError)
    async def _engine_error(_request: Request, exc: EngineError):
        return JSONResponse(ErrorBody(message=exc.message, field=exc.field).model_dump(), exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError):
        errors = []
        for err in exc.errors():
            field, message = request_errors.describe(err, _JOB_KIND_TAGS)
            errors.append({"field": field, "message": message})
        first = errors[0] if errors else {"field": "", "message": "Invalid request"}
        body = ErrorBody(message=request_errors.summary(first["field"], first["message"]),
                         field=first["field"] or None, errors=errors)
        return JSONResponse(body.model_dump(), 422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        """A bug: the traceback goes to the engine log (logs/engine.log), the client gets a
        message that says where to look."""
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(ErrorBody(message=(
            f"Unexpected error in the engine: {type(exc).__name__}: {exc}. The engine log "
            "(logs/engine.log in its data folder) has the details.")).model_dump(), 500)

    app.add_middleware(BodyLimit)

    @app.get(f"{PREFIX}/health", response_model=Health)
    async def health() -> Health:
        return engine.health()

    @app.get(f"{PREFIX}/models", response_model=list[ModelInfo])
    async def models() -> list[ModelInfo]:
        return await asyncio.to_thread(engine.list_models)

    @app.post(f"{PREFIX}/models/load", response_model=ModelInfo)
    async def load_model(req: LoadModelRequest) -> ModelInfo:
        return await asyncio.to_thread(engine.load_model, req.id or req.path, req.offload)

    @app.post(f"{PREFIX}/models/unload", response_model=Health)
    async def unload_model() -> Health:
        await asyncio.to_thread(engine.unload_model)
        return engine.health()

    @app.get(f"{PREFIX}/samplers", response_model=list[SamplerInfo])
    async def samplers() -> list[SamplerInfo]:
        return sampler_infos()

    @app.get(f"{PREFIX}/fits", response_model=list[FitInfo])
    async def fits(model: str | None = None) -> list[FitInfo]:
        """Analytic-DPM and calibration fits cached for ``model`` (default: loaded/default)."""
        return await asyncio.to_thread(engine.list_fits, model)

    # Everything below that reads the disk or the queue database runs in a worker thread: on
    # the event loop, a burst of submissions held /v1/health up for seconds.
    @app.post(f"{PREFIX}/jobs", response_model=Job, status_code=201)
    async def submit(req: JobSubmit) -> Job:
        return await asyncio.to_thread(_submit, engine, req)

    @app.get(f"{PREFIX}/jobs", response_model=list[Job])
    async def jobs() -> list[Job]:
        return await asyncio.to_thread(engine.queue.list)

    @app.get(f"{PREFIX}/jobs/{{job_id}}", response_model=Job)
    async def job(job_id: str) -> Job:
        return await asyncio.to_thread(engine.queue.get, job_id)

    @app.delete(f"{PREFIX}/jobs/{{job_id}}", response_model=Job)
    async def cancel(job_id: str) -> Job:
        return await asyncio.to_thread(engine.queue.cancel, job_id)

    @app.post(f"{PREFIX}/jobs/{{job_id}}/move", response_model=list[Job])
    async def move(job_id: str, req: MoveJob) -> list[Job]:
        return await asyncio.to_thread(engine.queue.move, job_id, req.position)

    @app.get(f"{PREFIX}/jobs/{{job_id}}/files/{{name}}")
    async def job_file(job_id: str, name: str):
        for result in (await asyncio.to_thread(engine.queue.get, job_id)).results:
            if result.name == name:
                path = Path(result.path)
                if not path.is_file():
                    raise NotFound(f"{name} was deleted from {path.parent}")
                media = "video/mp4" if path.suffix == ".mp4" else "image/png"
                return FileResponse(path, media_type=media)
            if result.uncertainty is not None and result.uncertainty.map_name == name:
                path = Path(result.path).with_name(name)  # the .npy beside the PNG
                if not path.is_file():
                    raise NotFound(f"{name} was deleted from {path.parent}")
                return FileResponse(path, media_type="application/octet-stream")
        raise NotFound(f"Job {job_id} has no file {name!r}")

    from engine.video.routes import video_router

    app.include_router(video_router(engine, PREFIX))
    from engine.prompts.routes import prompts_router

    app.include_router(prompts_router(engine, PREFIX))
    from engine.prompts.routes import prompts_router

    app.include_router(prompts_router(engine, PREFIX))

    @app.websocket(f"{PREFIX}/events")
    async def events(ws: WebSocket) -> None:
        await ws.accept()
        async with engine.bus.subscribe() as queue:
            await _stream_events(ws, queue, EngineStatus(health=engine.health()))

    return app


async def _stream_events(ws: WebSocket, queue: asyncio.Queue, first) -> None:
    """Send ``first`` then every event of ``queue`` until the client goes away or the server
    closes the connection (shutdown): whichever comes first ends the handler at once, so a
    shutdown does not wait out its grace time on idle event streams."""

    async def send() -> None:
        await ws.send_text(first.model_dump_json())
        while True:
            event = await queue.get()
            await ws.send_text(event.model_dump_json())

    async def until_closed() -> None:
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass  # clients send nothing we use; pings are answered by the server

    tasks = [asyncio.create_task(send()), asyncio.create_task(until_closed())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception) and not isinstance(
                    result, (WebSocketDisconnect, RuntimeError, OSError)):
                log.error("event stream failed", exc_info=result)


def _submit(engine, req: JobSubmit) -> Job:
    """Check a job the way it would fail when run, then queue it (in a worker thread)."""
    job = req.job
    if isinstance(job, GenerateJob):
        _check_networks(engine, job.params, "job.params")
        job = _check_generate(engine, job)
        if job.params.uncertainty is not None:
            job = _check_uncertainty(engine, job)
    elif isinstance(job, SamplerGridJob):
        _check_networks(engine, job.params.base, "job.params.base")
        job = _check_grid(engine, job)
    elif isinstance(job, RobustnessJob):
        _check_prompts(job.params.base, "job.params.base")
        _check_networks(engine, job.params.base, "job.params.base")
        job = _check_robustness(engine, job)
    elif isinstance(job, VideoEditJob):
        from engine.video.routes import check_video_edit

        _check_prompts(job.params, "job.params")
        _check_model(engine, job.params.model, "job.params.model")
        job = check_video_edit(engine, job)
    else:  # fits
        _check_model(engine, job.params.model, "job.params.model")
    return engine.queue.submit(job, req.priority, req.fast_path)


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
            "kind 'calibration_fit'), or turn calibration off.", f"{field}.calibrated")


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
        raise EngineError("The prompt has no words to probe: write a prompt first.",
                          "job.params.base.prompt")
    _check_sampler(params.base, "job.params.base")
    info = _check_model(engine, params.base.model, "job.params.base.model")
    _check_family(params.base, info, "job.params.base")
    return job.model_copy(update={"params": params.model_copy(
        update={"base": _random_seed(params.base)})})


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
            raise EngineError(message, f"job.params.samplers.{i // max(1, len(grid.cfg_scales))}.{field}")
    _check_prompts(grid.base, "job.params.base")
    info = _check_model(engine, grid.base.model, "job.params.base.model")
    for i, (sampler, cfg) in enumerate(grid.rows()):
        for name, message in check_family(grid.cell_params(sampler, grid.steps[0], cfg),
                                          info.architecture):
            field = f"samplers.{i // max(1, len(grid.cfg_scales))}" if name == "sampler" else name
            raise EngineError(message, f"job.params.{field}")
    _check_calibration(engine, grid.base, "job.params.base")
    grid = grid.model_copy(update={"base": _random_seed(grid.base)})
    return job.model_copy(update={"params": grid})

