"""The HTTP + WebSocket front of the engine (FastAPI). Transport only: the work is in jobs."""

from __future__ import annotations

import asyncio
import hmac
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse

from engine.errors import EngineError, NotFound
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
    SamplerGridJob,
    SamplerInfo,
    VideoEditJob,
)
from engine.samplers import check_options, sampler_infos

log = logging.getLogger(__name__)
PREFIX = f"/{API_VERSION}"
_JOB_KIND_TAGS = {"generate", "analytic_fit", "calibration_fit", "sampler_grid", "video_edit",
                  "uncertainty_fit"}


class TokenGate:
    """ASGI middleware: every request needs the token; requests from browser pages are refused.

    The token is accepted as ``Authorization: Bearer …``, as ``?token=…`` (WebSockets, the docs
    page) or from the ``sfumato_token`` cookie that opening ``/docs?token=…`` sets.
    A request carrying an ``Origin`` header comes from a web page, which could be any site the
    user visits: it is refused even with a valid token.
    """

    def __init__(self, app, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        ok_origin = origin is None
        authed = self._authorised(headers, scope.get("query_string", b"").decode("latin-1"))
        if ok_origin and authed:
            if scope["type"] == "http" and scope["path"] == "/docs" and "token=" in scope.get(
                "query_string", b""
            ).decode("latin-1"):
                return await self.app(scope, receive, self._set_cookie(send))
            return await self.app(scope, receive, send)
        code, message = (
            (403, "Requests from web pages are refused") if not ok_origin
            else (401, "Missing or wrong token: send 'Authorization: Bearer <token>'")
        )
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            return await send({"type": "websocket.close", "code": 4000 + code, "reason": message})
        body = ErrorBody(message=message).model_dump_json().encode()
        await send({"type": "http.response.start", "status": code,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    def _authorised(self, headers: dict[str, str], query: str) -> bool:
        candidates = []
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            candidates.append(auth[7:].strip())
        for part in query.split("&"):
            if part.startswith("token="):
                from urllib.parse import unquote

                candidates.append(unquote(part[6:]))
        for cookie in headers.get("cookie", "").split(";"):
            name, _, value = cookie.strip().partition("=")
            if name == "sfumato_token":
                candidates.append(value)
        return any(hmac.compare_digest(c.encode(), self.token.encode()) for c in candidates)

    def _set_cookie(self, send):
        async def wrapped(message):
            if message["type"] == "http.response.start":
                cookie = f"sfumato_token={self.token}; HttpOnly; SameSite=Strict; Path=/"
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode())]
            await send(message)

        return wrapped


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
    )

    @app.exception_handler(EngineError)
    async def _engine_error(_request: Request, exc: EngineError):
        return JSONResponse(ErrorBody(message=exc.message, field=exc.field).model_dump(), exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError):
        errors = []
        for err in exc.errors():
            loc = [str(x) for x in err["loc"] if x != "body" and x not in _JOB_KIND_TAGS]
            msg = str(err["msg"]).removeprefix("Value error, ")
            errors.append({"field": ".".join(loc), "message": msg})
        first = errors[0] if errors else {"field": "", "message": "Invalid request"}
        label = first["field"].rsplit(".", 1)[-1].replace("_", " ").capitalize()
        body = ErrorBody(message=f"{label}: {first['message']}" if label else first["message"],
                         field=first["field"] or None, errors=errors)
        return JSONResponse(body.model_dump(), 422)

    @app.get(f"{PREFIX}/health", response_model=Health)
    async def health() -> Health:
        return engine.health()

    @app.get(f"{PREFIX}/models", response_model=list[ModelInfo])
    async def models() -> list[ModelInfo]:
        return await asyncio.to_thread(engine.list_models)

    @app.post(f"{PREFIX}/models/load", response_model=ModelInfo)
    async def load_model(req: LoadModelRequest) -> ModelInfo:
        return await asyncio.to_thread(engine.load_model, req.id or req.path)

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

    @app.post(f"{PREFIX}/jobs", response_model=Job, status_code=201)
    async def submit(req: JobSubmit) -> Job:
        job = req.job
        if isinstance(job, GenerateJob):
            job = _check_generate(engine, job)
            if job.params.uncertainty or job.params.variation_step is not None:
                job = await asyncio.to_thread(_check_uncertainty, engine, job)
        elif isinstance(job, SamplerGridJob):
            job = _check_grid(engine, job)
        elif isinstance(job, VideoEditJob):
            from engine.video.routes import check_video_edit

            _check_model(engine, job.params.model, "job.params.model")
            job = await asyncio.to_thread(check_video_edit, engine, job)
        else:  # fits
            _check_model(engine, job.params.model, "job.params.model")
        return engine.queue.submit(job, req.priority)

    @app.get(f"{PREFIX}/jobs", response_model=list[Job])
    async def jobs() -> list[Job]:
        return engine.queue.list()

    @app.get(f"{PREFIX}/jobs/{{job_id}}", response_model=Job)
    async def job(job_id: str) -> Job:
        return engine.queue.get(job_id)

    @app.delete(f"{PREFIX}/jobs/{{job_id}}", response_model=Job)
    async def cancel(job_id: str) -> Job:
        return engine.queue.cancel(job_id)

    @app.post(f"{PREFIX}/jobs/{{job_id}}/move", response_model=list[Job])
    async def move(job_id: str, req: MoveJob) -> list[Job]:
        return engine.queue.move(job_id, req.position)

    @app.get(f"{PREFIX}/jobs/{{job_id}}/files/{{name}}")
    async def job_file(job_id: str, name: str):
        for result in engine.queue.get(job_id).results:
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

    @app.websocket(f"{PREFIX}/events")
    async def events(ws: WebSocket) -> None:
        await ws.accept()
        async with engine.bus.subscribe() as queue:
            try:
                await ws.send_text(EngineStatus(health=engine.health()).model_dump_json())
                while True:
                    event = await queue.get()
                    await ws.send_text(event.model_dump_json())
            except (WebSocketDisconnect, RuntimeError):
                pass

    return app


def _check_model(engine, model: str | None, field: str) -> None:
    if model:
        try:
            engine.registry.get(model)
        except NotFound as exc:
            raise EngineError(exc.message, field) from None


def _check_sampler(params, field: str) -> None:
    for name, message in check_options(params):
        raise EngineError(message, f"{field}.{name}")


def _random_seed(params):
    if params.seed < 0:
        import secrets

        params = params.with_seed(secrets.randbelow(2**32))
    return params


def _check_generate(engine, job: GenerateJob) -> GenerateJob:
    params = job.params
    _check_sampler(params, "job.params")
    _check_model(engine, params.model, "job.params.model")
    return job.model_copy(update={"params": _random_seed(params)})


def _check_uncertainty(engine, job: GenerateJob) -> GenerateJob:
    """422 unless the sampler carries BayesDiff uncertainty and the model has a fit."""
    from engine.uncertainty.generate import uncertainty_problem

    info = engine.queue.resolve_model(job.params.model)
    problem = uncertainty_problem(job.params, engine.fits, info)
    if problem:
        raise EngineError(problem[1], f"job.params.{problem[0]}")
    if job.params.variation_seed < 0:
        import secrets

        params = job.params.model_copy(update={"variation_seed": secrets.randbelow(2**32)})
        job = job.model_copy(update={"params": params})
    return job


def _check_grid(engine, job: SamplerGridJob) -> SamplerGridJob:
    grid = job.params
    for i, (sampler, cfg) in enumerate(grid.rows()):
        for name, message in check_options(grid.cell_params(sampler, grid.steps[0], cfg)):
            field = "sampler" if name == "sampler" else name
            raise EngineError(message, f"job.params.samplers.{i // max(1, len(grid.cfg_scales))}.{field}")
    _check_model(engine, grid.base.model, "job.params.base.model")
    grid = grid.model_copy(update={"base": _random_seed(grid.base)})
    return job.model_copy(update={"params": grid})

