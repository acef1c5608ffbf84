"""The engine's HTTP + WebSocket client (aiohttp), speaking :mod:`engine.protocol`.

Every call is a coroutine on the Qt event loop (via qasync). Failures surface as
:class:`EngineUnavailable` (nothing answered) or :class:`ApiError` (the engine said no, with the
offending field when there is one).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from engine.prompts_protocol import LoraInfo, TokenCount, TokenCountRequest
from engine.protocol import (
    API_VERSION,
    ErrorBody,
    Event,
    FitInfo,
    GenerateJob,
    GenerateParams,
    Health,
    Job,
    JobSubmit,
    LoadModelRequest,
    ModelInfo,
    MoveJob,
    SamplerInfo,
    parse_event,
)
from engine.video_protocol import (
    ControlPreview,
    ControlPreviewRequest,
    UploadInfo,
    VideoEditJob,
    VideoEditParams,
)

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)
M = TypeVar("M")

#: Long enough for a slow CPU answer, short enough that a dead engine is noticed.
REQUEST_TIMEOUT_S = 30.0
#: Seconds the pool keeps an idle connection: below the engine's keep-alive (60 s,
#: engine/cli.py) so a connection the engine is about to close is never reused.
KEEPALIVE_S = 10.0
#: Loading a big checkpoint from a slow disk can take minutes.
LOAD_TIMEOUT_S = 600.0
RECONNECT_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 5.0)
#: Uploading a long clip to a remote engine, decoding frames for a preview, fetching an MP4.
UPLOAD_TIMEOUT_S = 3600.0
VIDEO_TIMEOUT_S = 300.0
UPLOAD_CHUNK = 1 << 20


class EngineError(Exception):
    """Base class of everything the client raises."""


class EngineUnavailable(EngineError):
    """The engine did not answer (not running, wrong URL, network down, timeout)."""


class ApiError(EngineError):
    """The engine refused a request. ``field`` is a dotted path such as ``job.params.width``."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        errors: list[dict[str, str]] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.errors = list(errors or [])

    def field_messages(self) -> dict[str, str]:
        """``{dotted field: message}`` for every field the engine complained about."""
        out: dict[str, str] = {}
        for err in self.errors:
            if err.get("field"):
                out.setdefault(err["field"], err.get("message", self.message))
        if self.field:
            out.setdefault(self.field, self.message)
        return out

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.message!r}, field={self.field!r})"


class AuthError(ApiError):
    """401/403: the token is wrong (or the request looked like it came from a browser)."""


class NotFound(ApiError):
    """404: no such job, file or model."""


@dataclass(frozen=True)
class StreamConnected:
    """Yielded by :meth:`EngineClient.events` each time the WebSocket (re)connects."""


@dataclass(frozen=True)
class StreamLost:
    """Yielded by :meth:`EngineClient.events` when the WebSocket drops; it will retry."""

    reason: str


StreamItem = Event | StreamConnected | StreamLost


class EngineClient:
    """A connection to one engine at ``url`` (``http://host:port``) with its bearer token."""

    def __init__(self, url: str, token: str):
        self.url = url.rstrip("/")
        self.token = token
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        #: Sent with every job that does not say: None follows the engine, False runs eager.
        self.fast_path: bool | None = None
        #: Memory placement sent with each model load (Settings → GPU memory); None: the engine's.
        self.offload: str | None = None

    @property
    def api(self) -> str:
        return f"{self.url}/{API_VERSION}"

    def _get_session(self) -> aiohttp.ClientSession:
        import aiohttp  # lazy: keeps aiohttp's import off the window's start-up path

        if self._closed:
            raise EngineUnavailable("The client was closed.")
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
                connector=aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_S),
            )
        return self._session

    async def close(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ----------------------------------------------------------------- plumbing
    async def _request(
        self, method: str, path: str, body: BaseModel | None = None, *, timeout: float | None = None
    ) -> Any:
        """Send one request; the decoded JSON answer, or raise ApiError / EngineUnavailable."""
        data = await self._raw(method, path, body, timeout=timeout)
        try:
            return json.loads(data) if data else None
        except ValueError as exc:
            raise EngineUnavailable(f"{method} {path}: the engine sent something not JSON") from exc

    async def _raw(
        self,
        method: str,
        path: str,
        body: BaseModel | None = None,
        *,
        timeout: float | None = None,
        data: Any = None,
        length: int | None = None,
    ) -> bytes:
        import aiohttp

        session = self._get_session()
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["data"] = body.model_dump_json()
            kwargs["headers"] = {"Content-Type": "application/json"}
        elif data is not None:
            kwargs["data"] = data
            kwargs["headers"] = {"Content-Type": "application/octet-stream"}
            if length is not None:
                # Said up front, so the engine can refuse a huge file before reading it.
                kwargs["headers"]["Content-Length"] = str(length)
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout)
        for attempt in (1, 2):
            try:
                async with session.request(method, self.api + path, **kwargs) as resp:
                    data = await resp.read()
                    if resp.status >= 400:
                        raise _api_error(resp.status, data)
                    return data
            except (TimeoutError, aiohttp.ClientConnectionError, OSError) as exc:
                if attempt == 1 and _unsent(exc) and not _is_stream(kwargs.get("data")):
                    continue  # the engine never saw it (a pooled connection it had closed)
                raise EngineUnavailable(_describe(exc, self.url)) from exc
        raise AssertionError("unreachable")

    async def _get_model(self, model: type[M] | Any, method: str, path: str, **kw: Any) -> M:
        data = await self._request(method, path, **kw)
        try:
            return TypeAdapter(model).validate_python(data)
        except ValidationError as exc:
            raise EngineUnavailable(
                f"{method} {path}: the engine answered in an unexpected shape "
                f"(app and engine versions differ?): {exc.errors()[0]['msg']}"
            ) from exc

    # ----------------------------------------------------------------- engine & models
    async def health(self) -> Health:
        return await self._get_model(Health, "GET", "/health")

    async def models(self) -> list[ModelInfo]:
        return await self._get_model(list[ModelInfo], "GET", "/models")

    async def load_model(
        self, model_id: str | None = None, *, path: str | None = None
    ) -> ModelInfo:
        body = LoadModelRequest(id=model_id, path=path, offload=self.offload)
        return await self._get_model(
            ModelInfo, "POST", "/models/load", body=body, timeout=LOAD_TIMEOUT_S
        )

    async def unload_model(self) -> Health:
        return await self._get_model(Health, "POST", "/models/unload")

    async def samplers(self) -> list[SamplerInfo]:
        return await self._get_model(list[SamplerInfo], "GET", "/samplers")

    # ----------------------------------------------------------------- prompts
    async def prompt_tokens(
        self, prompt: str, model: str | None = None, steps: int = 20
    ) -> TokenCount:
        """The prompt's tokens per 75-token chunk, counted by the engine's tokenizer."""
        body = TokenCountRequest(prompt=prompt, model=model, steps=steps)
        return await self._get_model(TokenCount, "POST", "/prompts/tokens", body=body)

    async def loras(self) -> list[LoraInfo]:
        """The LoRAs in the engine's models folders, with the base each fits."""
        return await self._get_model(list[LoraInfo], "GET", "/loras")

    async def fits(self, model: str | None = None) -> list[FitInfo]:
        """Analytic-DPM and calibration fits cached for ``model`` (None: the loaded one)."""
        from urllib.parse import quote

        query = f"?model={quote(model, safe='')}" if model else ""
        return await self._get_model(list[FitInfo], "GET", f"/fits{query}")

    # ----------------------------------------------------------------- jobs
    async def submit(self, params: GenerateParams, *, priority: int = 0) -> Job:
        """Queue a text-to-image job."""
        return await self.submit_job(JobSubmit(job=GenerateJob(params=params), priority=priority))

    async def submit_job(self, submit: JobSubmit) -> Job:
        if submit.fast_path is None and self.fast_path is not None:
            submit = submit.model_copy(update={"fast_path": self.fast_path})
        return await self._get_model(Job, "POST", "/jobs", body=submit)

    async def jobs(self) -> list[Job]:
        return await self._get_model(list[Job], "GET", "/jobs")

    async def job(self, job_id: str) -> Job:
        return await self._get_model(Job, "GET", f"/jobs/{job_id}")

    async def cancel(self, job_id: str) -> Job:
        return await self._get_model(Job, "DELETE", f"/jobs/{job_id}")

    async def move(self, job_id: str, position: int) -> list[Job]:
        body = MoveJob(position=position)
        return await self._get_model(list[Job], "POST", f"/jobs/{job_id}/move", body=body)

    async def file(self, job_id: str, name: str) -> bytes:
        """The bytes of one result file (a PNG with its recipe)."""
        return await self._raw("GET", f"/jobs/{job_id}/files/{name}", timeout=120.0)

    # ----------------------------------------------------------------- video (docs/video.md)
    async def upload(
        self, path: Path | str, progress: Callable[[int, int], None] | None = None
    ) -> UploadInfo:
        """Send a local file to ``POST /v1/uploads`` (raw bytes, ``?name=``). The engine probes a
        video at once: not a video, corrupt, empty, too long → :class:`ApiError` with its message.
        ``progress(sent, total)`` is called as chunks leave."""
        from urllib.parse import quote

        path = Path(path)
        try:
            total = path.stat().st_size
        except OSError as exc:
            raise ApiError(400, f"Cannot read {path.name}: {exc.strerror or exc}", "path") from exc

        async def chunks() -> AsyncIterator[bytes]:
            sent = 0
            loop = asyncio.get_running_loop()
            with open(path, "rb") as f:  # noqa: ASYNC230 (read in a thread below)
                while True:
                    chunk = await loop.run_in_executor(None, f.read, UPLOAD_CHUNK)
                    if not chunk:
                        break
                    sent += len(chunk)
                    if progress is not None:
                        progress(sent, total)
                    yield chunk

        data = await self._raw(
            "POST",
            f"/uploads?name={quote(path.name, safe='')}",
            data=chunks(),
            length=total,
            timeout=UPLOAD_TIMEOUT_S,
        )
        return _validate(UploadInfo, data, "POST /uploads")

    async def control_preview(self, request: ControlPreviewRequest) -> ControlPreview:
        """Control maps (and the resized frames) for a few frames of an upload or a video path
        on the engine's machine; runs at once, not through the queue."""
        return await self._get_model(
            ControlPreview, "POST", "/video/control_preview", body=request, timeout=VIDEO_TIMEOUT_S
        )

    async def submit_video_edit(self, params: VideoEditParams, *, priority: int = 0) -> Job:
        return await self.submit_job(JobSubmit(job=VideoEditJob(params=params), priority=priority))

    async def download(self, job_id: str, name: str) -> bytes:
        """A large result file (an edited MP4)."""
        return await self._raw("GET", f"/jobs/{job_id}/files/{name}", timeout=VIDEO_TIMEOUT_S)

    # ----------------------------------------------------------------- events
    async def events(self, *, reconnect: bool = True) -> AsyncIterator[StreamItem]:
        """Engine events, forever: reconnects after drops and says so with Stream* markers.

        Yields :class:`StreamConnected` after each successful (re)connect, so the caller can
        resynchronise (missed events are not replayed), and :class:`StreamLost` on each drop.
        With ``reconnect=False`` it ends at the first drop instead.
        """
        import aiohttp

        attempt = 0
        ws_url = self.api.replace("http", "ws", 1) + "/events"
        while not self._closed:
            reason = ""
            try:
                session = self._get_session()
                async with session.ws_connect(
                    ws_url,
                    params={"token": self.token},
                    heartbeat=20.0,
                    timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                ) as ws:
                    attempt = 0
                    yield StreamConnected()
                    async for msg in ws:
                        if msg.type is aiohttp.WSMsgType.TEXT:
                            try:
                                yield parse_event(msg.data)
                            except ValidationError as exc:
                                # A newer engine may send events this app does not know yet.
                                log.warning("ignoring unknown event: %s", exc.errors()[0])
                        elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                            break
                    reason = "the engine closed the event stream"
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status in (401, 403):
                    raise AuthError(exc.status, "The engine refused the token.") from exc
                reason = f"event stream refused ({exc.status})"
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                reason = _describe(exc, self.url)
            except EngineUnavailable as exc:
                reason = str(exc)
            if self._closed:
                return
            yield StreamLost(reason)
            if not reconnect:
                return
            await asyncio.sleep(RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)])
            attempt += 1


def _validate(model: Any, data: bytes, what: str) -> Any:
    try:
        return TypeAdapter(model).validate_json(data)
    except ValidationError as exc:
        raise EngineUnavailable(
            f"{what}: the engine answered in an unexpected shape (app and engine versions "
            f"differ?): {exc.errors()[0]['msg']}"
        ) from exc


def _api_error(status: int, data: bytes) -> ApiError:
    """Map a 4xx/5xx answer to the right exception, keeping the engine's field and message."""
    cls = AuthError if status in (401, 403) else NotFound if status == 404 else ApiError
    try:
        body = ErrorBody.model_validate_json(data)
        return cls(status, body.message, body.field, body.errors)
    except ValidationError:
        pass
    # Not our ErrorBody (a proxy page, FastAPI's default {"detail": ...}): keep what is readable.
    message = data.decode("utf-8", "replace").strip()[:300] or f"HTTP {status}"
    try:
        detail = json.loads(data).get("detail")
        if isinstance(detail, str):
            message = detail
        elif isinstance(detail, list) and detail:
            first = detail[0]
            loc = ".".join(str(p) for p in first.get("loc", []) if p != "body")
            return cls(
                status,
                str(first.get("msg", message)),
                loc or None,
                [{"field": loc, "message": str(first.get("msg", ""))}],
            )
    except (ValueError, AttributeError):
        pass
    if status in (401, 403) and not message:
        message = "The engine refused the token."
    return cls(status, message)


def _unsent(exc: BaseException) -> bool:
    """The request failed while its bytes were being written to a connection that was already
    closing: nothing reached the engine, so sending it again cannot do anything twice."""
    import aiohttp

    return isinstance(exc.__cause__, aiohttp.ClientConnectionResetError) and isinstance(
        exc, aiohttp.ClientOSError
    )


def _is_stream(data: Any) -> bool:
    """An upload body that can be read only once (a file being streamed)."""
    return data is not None and not isinstance(data, (str, bytes, bytearray))


def _describe(exc: BaseException, url: str) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"The engine at {url} did not answer in time."
    return f"Cannot reach the engine at {url}: {exc or type(exc).__name__}"
