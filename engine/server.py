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
from engine.kinds import KINDS
from engine.limits import BodyLimit
from engine.protocol import (
    API_VERSION,
    EngineStatus,
    ErrorBody,
    FitInfo,
    Health,
    Job,
    JobSubmit,
    LoadModelRequest,
    ModelInfo,
    MoveJob,
    SamplerInfo,
)
from engine.samplers import sampler_infos

log = logging.getLogger(__name__)
PREFIX = f"/{API_VERSION}"
_JOB_KIND_TAGS = set(KINDS)  # pydantic's union tags, stripped from error field paths


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
        return JSONResponse(
            ErrorBody(message=exc.message, field=exc.field).model_dump(), exc.status
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError):
        errors = []
        for err in exc.errors():
            field, message = request_errors.describe(err, _JOB_KIND_TAGS)
            errors.append({"field": field, "message": message})
        first = errors[0] if errors else {"field": "", "message": "Invalid request"}
        body = ErrorBody(
            message=request_errors.summary(first["field"], first["message"]),
            field=first["field"] or None,
            errors=errors,
        )
        return JSONResponse(body.model_dump(), 422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        """A bug: the traceback goes to the engine log (logs/engine.log), the client gets a
        message that says where to look."""
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(
            ErrorBody(
                message=(
                    f"Unexpected error in the engine: {type(exc).__name__}: {exc}. The engine log "
                    "(logs/engine.log in its data folder) has the details."
                )
            ).model_dump(),
            500,
        )

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
                result, (WebSocketDisconnect, RuntimeError, OSError)
            ):
                log.error("event stream failed", exc_info=result)


def _submit(engine, req: JobSubmit) -> Job:
    """Check a job the way it would fail when run, then queue it (in a worker thread)."""
    job = KINDS[req.job.kind].check(engine, req.job)
    return engine.queue.submit(job, req.priority, req.fast_path)
