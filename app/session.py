"""The engine connection: the client, the local engine process, health, and the event stream.

One :class:`EngineSession` per window. It starts (or reaches) the engine, keeps one
:class:`~app.client.EngineClient` attached, re-syncs the state after every (re)connect, and
routes each engine event to the controller that claimed its job kind
(:meth:`EngineSession.claim`): a feature listens to its own kinds and nobody else's. Every task
it starts goes through :meth:`EngineSession.spawn`, which reports failures as notices instead of
raising into Qt.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from engine.protocol import EngineStatus, Event, Job, JobFinished, JobQueued, JobSubmit

from .client import ApiError, AuthError, EngineClient, EngineError, StreamConnected, StreamLost
from .engine_locator import NO_ENGINE_MESSAGE, engine_command, engine_workdir
from .engine_process import EngineLaunch, EngineStartError, LocalEngine
from .paths import AppPaths
from .state import Connection, EngineInfo, JobsState, Settings
from .state.settings import REMOTE

log = logging.getLogger(__name__)

#: Notice levels: the status bar's and the canvas toast's.
INFO, WARNING, ERROR = "info", "warning", "error"

#: A controller's handler of its job kinds' events.
EventHandler = Callable[[Event], None]
#: Run after every (re)connect, in the order registered: (the client, the engine's jobs).
SyncHook = Callable[[EngineClient, list[Job]], Awaitable[None]]


@dataclass
class LaunchOptions:
    """Start-up choices from the command line and environment (they win over Settings)."""

    engine_url: str | None = None
    engine_token: str | None = None
    model: str | None = None
    models_dirs: list[Path] = field(default_factory=list)
    engine_command: list[str] | None = None
    engine_args: list[str] = field(default_factory=list)
    spawn_engine: bool = True
    #: Python that runs the local engine (``--engine-python``); None = Settings' choice.
    engine_python: str | None = None


class EngineSession(QObject):
    """The client, the local engine (if any), the task set and the event router."""

    #: (level, message): for the status bar and the canvas toast. level: info/warning/error.
    notice = Signal(str, str)
    #: Every finished job, whatever its kind (e.g. the Robustness panel times generate jobs).
    job_finished = Signal(object)

    def __init__(
        self,
        paths: AppPaths,
        settings: Settings,
        options: LaunchOptions,
        engine: EngineInfo,
        jobs: JobsState,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.paths, self.settings, self.options = paths, settings, options
        self.engine, self.jobs = engine, jobs
        self.client: EngineClient | None = None
        self.local: LocalEngine | None = None
        self._events_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._claims: dict[str, EventHandler] = {}
        self._unclaimed: EventHandler | None = None
        self._sync_hooks: list[SyncHook] = []
        settings.fast_path_changed.connect(self._fast_path_setting)
        settings.offload_changed.connect(
            lambda mode: setattr(self.client, "offload", mode) if self.client else None
        )

    # ================================================================= routing
    def claim(self, kinds: Iterable[str] | None, handler: EventHandler) -> None:
        """Send the events of jobs of these ``kinds`` to ``handler`` (None: every kind nobody
        claimed, and events of jobs this window never saw queued). One owner per kind."""
        if kinds is None:
            self._unclaimed = handler
            return
        for kind in kinds:
            if kind in self._claims:
                raise ValueError(f"job kind {kind!r} is claimed twice")
            self._claims[kind] = handler

    def on_sync(self, hook: SyncHook) -> None:
        """Await ``hook`` after every (re)connect's full sync, in the order registered."""
        self._sync_hooks.append(hook)

    def claims(self) -> dict[str, object]:
        """Who listens to each claimed job kind: the controller whose handler it is."""
        return {kind: getattr(h, "__self__", h) for kind, h in self._claims.items()}

    def kind_of(self, event: Event) -> str:
        """The job kind an event belongs to ('' for engine-wide events and unknown jobs)."""
        if isinstance(event, JobQueued | JobFinished):
            return event.job.kind
        item = self.jobs.get(getattr(event, "job_id", "") or "")
        return item.kind if item is not None else ""

    def handle_event(self, event: Event) -> None:
        """Fold one engine event into the state (public so tests can feed events)."""
        self.jobs.apply(event)
        if isinstance(event, EngineStatus):
            self.engine.update_health(event.health)
            return
        if isinstance(event, JobFinished):
            self.job_finished.emit(event.job)
        handler = self._claims.get(self.kind_of(event), self._unclaimed)
        if handler is not None:
            handler(event)

    # ================================================================= lifecycle
    @property
    def output_dir(self) -> Path:
        return (
            Path(self.settings.output_dir).expanduser()
            if self.settings.output_dir
            else self.paths.outputs
        )

    @property
    def is_remote(self) -> bool:
        return bool(self.options.engine_url) or self.settings.engine_mode == REMOTE

    @property
    def usable(self) -> bool:
        """A client is attached and the engine takes requests."""
        return self.client is not None and self.engine.connection.usable

    async def start_engine(self) -> None:
        if self.options.engine_url:
            await self.attach(self.options.engine_url, self.options.engine_token or "", remote=True)
        elif self.settings.engine_mode == REMOTE:
            await self.attach(self.settings.remote_url, self.settings.remote_token, remote=True)
        elif self.options.spawn_engine:
            await self._start_local()
        else:
            self.engine.connection = Connection.stopped

    async def _start_local(self) -> None:
        if self.local is None:
            opts = self.options
            dirs = list(opts.models_dirs) or [Path(d) for d in self.settings.models_dirs if d]
            if self.paths.models.is_dir() and self.paths.models not in dirs:
                dirs.append(self.paths.models)
            command = opts.engine_command or engine_command(
                opts.engine_python or self.settings.engine_python
            )
            if command is None:  # the packaged app and no engine Python chosen yet
                self.engine.connection = Connection.disconnected
                self.engine.detail = NO_ENGINE_MESSAGE
                self.notice.emit(ERROR, NO_ENGINE_MESSAGE)
                return
            launch = EngineLaunch(
                data_dir=self.paths.engine_data,
                output_dir=self.output_dir,
                model=opts.model or self.settings.model or None,
                models_dirs=dirs,
                extra_args=list(opts.engine_args),
                command=command,
                cwd=engine_workdir(command),
                log_dir=self.paths.logs,
            )
            self.local = LocalEngine(launch, self)
            self.local.starting.connect(self._on_engine_starting)
            self.local.crashed.connect(self._on_engine_crashed)
            self.local.ready.connect(self._on_engine_ready)
            self.local.gave_up.connect(self._on_engine_gave_up)
        self.engine.remote = False
        try:
            await self.local.start()
        except EngineStartError as exc:
            self.engine.connection = Connection.disconnected
            first = str(exc).splitlines()[0]
            self.engine.detail = str(exc)
            self.notice.emit(ERROR, f"{first} See Help → Open log folder.")

    def _on_engine_starting(self, attempt: int) -> None:
        if attempt > 1:
            self.engine.connection = Connection.restarting
        else:
            self.engine.connection = Connection.starting
            self.engine.detail = "Starting the local engine…"

    def _on_engine_crashed(self, code: int, tail: str) -> None:
        self.engine.connection = Connection.restarting
        last = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
        self.engine.detail = f"Engine exited (code {code}); restarting. {last}".strip()
        self.notice.emit(
            WARNING,
            f"The engine crashed (exit code {code}); restarting it. Queued jobs will resume.",
        )

    def _on_engine_ready(self, url: str) -> None:
        assert self.local is not None
        self.spawn(self.attach(url, self.local.token, remote=False))

    def _on_engine_gave_up(self, message: str) -> None:
        self.engine.connection = Connection.disconnected
        self.engine.detail = message
        self.notice.emit(ERROR, message)

    async def attach(self, url: str, token: str, *, remote: bool) -> None:
        """(Re)attach to the engine at ``url``: fresh client, event stream, then a full sync."""
        await self._drop_client()
        self.engine.remote = remote
        self.engine.url = url
        if self.engine.connection is not Connection.restarting:
            self.engine.connection = Connection.connecting
        self.client = EngineClient(url, token)
        self.client.fast_path = None if self.settings.fast_path else False
        self.client.offload = self.settings.offload
        self._events_task = asyncio.ensure_future(self._pump_events(self.client))

    def _fast_path_setting(self, on: bool) -> None:
        """Settings → Fast path: jobs from now on ask for eager (off) or the engine's default."""
        if self.client is not None:
            self.client.fast_path = None if on else False

    async def _drop_client(self) -> None:
        if self._events_task is not None:
            self._events_task.cancel()
            self._events_task = None
        if self.client is not None:
            await self.client.close()
            self.client = None

    async def reconnect(self) -> None:
        """Apply changed engine settings: switch local ↔ remote, or restart the local engine."""
        await self._drop_client()
        if self.local is not None:
            await self.local.stop()
            self.local = None
        await self.start_engine()

    def restart_engine(self) -> None:
        """Menu action: restart the local engine (or reconnect to the remote one)."""
        self.spawn(self.reconnect())

    async def close(self) -> None:
        """Stop everything: the tasks, the event stream, the client, the local engine."""
        for task in list(self._tasks):
            task.cancel()
        await self._drop_client()
        if self.local is not None:
            await self.local.stop()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` on the loop, keeping a reference and reporting unexpected errors."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    @property
    def busy(self) -> bool:
        """Some task started through :meth:`spawn` has not finished yet."""
        return bool(self._tasks)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, EngineError):
            self.notice.emit(ERROR, str(exc))
        elif exc is not None:
            log.error("task failed", exc_info=exc)
            self.notice.emit(ERROR, f"Unexpected error: {type(exc).__name__}: {exc}")

    # ================================================================= events
    async def _pump_events(self, client: EngineClient) -> None:
        try:
            await self._pump(client)
        except AuthError:
            self.engine.connection = Connection.disconnected
            self.engine.detail = "The engine refused the token."
            self.notice.emit(
                ERROR, f"The engine at {client.url} refused the token. Check the token in Settings."
            )

    async def _pump(self, client: EngineClient) -> None:
        async for item in client.events():
            if client is not self.client:
                return
            if isinstance(item, StreamConnected):
                self.spawn(self._sync(client))
            elif isinstance(item, StreamLost):
                if self.engine.connection is not Connection.restarting:
                    self.engine.connection = Connection.disconnected
                    self.engine.detail = item.reason
            else:
                self.handle_event(item)

    async def _sync(self, client: EngineClient) -> None:
        """Fetch everything the event stream does not replay: health, models, samplers, jobs;
        then let each feature catch up (:meth:`on_sync`)."""
        health, models, samplers, jobs = await asyncio.gather(
            client.health(), client.models(), client.samplers(), client.jobs()
        )
        if client is not self.client:
            return
        self.engine.models = models
        self.engine.models_listed = True
        self.engine.samplers = samplers
        self.engine.update_health(health)
        self.engine.detail = ""
        self.jobs.reset(jobs)
        for hook in self._sync_hooks:
            await hook(client, jobs)

    async def submit_job(self, submit: JobSubmit, what: str) -> None:
        """Queue a job; the engine's refusal becomes a notice: "<what>: <its words>"."""
        assert self.client is not None
        try:
            job = await self.client.submit_job(submit)
        except ApiError as exc:
            self.notice.emit(ERROR, f"{what}: {exc.message}")
            return
        self.jobs.upsert(job)

    # ================================================================= models
    def load_model(self, model_id: str) -> None:
        self.spawn(self._load_model(model_id))

    async def _load_model(self, model_id: str) -> None:
        if self.client is None:
            self.notice.emit(WARNING, "The engine is not connected.")
            return
        self.engine.loading_model = model_id
        previous = self.engine.connection
        self.engine.connection = Connection.loading
        try:
            info = await self.client.load_model(model_id)
        except EngineError:
            self.engine.connection = previous
            raise
        finally:
            self.engine.loading_model = ""
        self.settings.model = info.id
        await self.refresh_engine()
        self.notice.emit(INFO, f"Loaded {info.name}.")

    def unload_model(self) -> None:
        self.spawn(self._unload_model())

    async def _unload_model(self) -> None:
        if self.client is None:
            return
        health = await self.client.unload_model()
        self.engine.update_health(health)
        await self.refresh_engine()
        self.notice.emit(INFO, "Model unloaded; memory freed.")

    async def refresh_engine(self) -> None:
        """Re-read health and models (after loading/unloading)."""
        if self.client is None:
            return
        health, models = await asyncio.gather(self.client.health(), self.client.models())
        self.engine.models = models
        self.engine.models_listed = True
        self.engine.update_health(health)

    async def test_connection(self, url: str, token: str) -> str:
        """Try an engine URL + token (Settings dialog); a sentence saying what answered."""
        client = EngineClient(url, token)
        try:
            h = await client.health()
        except AuthError:
            return "✗ The engine answered but refused the token."
        except EngineError as exc:
            return f"✗ {exc}"
        finally:
            await client.close()
        model = f" · model {h.model}" if h.model else " · no model loaded"
        return f"✓ Sfumato engine {h.version} on {h.device} ({h.dtype}){model}"
