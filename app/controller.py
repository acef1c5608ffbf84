"""The glue: turns state and user intents into engine requests, and engine events into state.

Widgets call the plain (non-async) action methods here; each starts a task on the qasync loop
and reports trouble through :attr:`AppController.notice` and the state objects. No widget ever
touches the client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from engine.protocol import (
    AnalyticFitJob,
    AnalyticFitParams,
    CalibrationFitJob,
    CalibrationFitParams,
    EngineStatus,
    Event,
    FitData,
    GenerateParams,
    JobFinished,
    JobPreview,
    JobProgress,
    JobResult,
    JobStarted,
    JobState,
    JobSubmit,
    ResultImage,
    SamplerGridJob,
    UncertaintyFitJob,
    UncertaintyFitParams,
    UncertaintyOptions,
)

from .client import ApiError, AuthError, EngineClient, EngineError, StreamConnected, StreamLost
from .controllers.prompt_tools import PromptToolsController
from .controllers.robustness import RobustnessController
from .controllers.video import VideoController
from .engine_locator import NO_ENGINE_MESSAGE, engine_command, engine_workdir
from .engine_process import EngineLaunch, EngineStartError, LocalEngine
from .library import HistoryEntry, HistoryIndex, is_video, poster_path, thumbnail_source
from .paths import AppPaths
from .recipe import RecipeError, describe, grid_from_file, read_recipe, recipe_from_file
from .state import (
    CanvasImage,
    CanvasState,
    Connection,
    EngineInfo,
    GenerationSettings,
    HistoryState,
    JobsState,
    Settings,
)
from .state.generation import field_of
from .state.grid import CanvasGrid, GridChoice
from .state.jobs import FIT_KINDS
from .state.model_size import ARCH_SIZES, native_size, size_warning  # noqa: F401 (re-exported)
from .state.prompt_tools import PromptTools
from .state.robustness import RobustnessState
from .state.sampler import (
    ANALYTIC_FIT_STEPS,
    ANALYTIC_SAMPLES_PER_STEP,
    CALIBRATION_IMAGES,
    CALIBRATION_TIMESTEPS,
    FIT_NAMES,
    FitsState,
)
from .state.settings import REMOTE
from .state.uncertainty import UncertaintyMap, UncertaintyView, find_map, load_map, map_path
from .state.video import VideoState

log = logging.getLogger(__name__)

INFO, WARNING, ERROR = "info", "warning", "error"


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


class AppController(QObject):
    """Owns the state objects, the client and (for a local engine) the engine process."""

    #: (level, message): for the status bar and the canvas toast. level: info/warning/error.
    notice = Signal(str, str)
    #: A video result was opened from the History: (its path) — the window plays it in the
    #: Video panel.
    video_opened = Signal(str)

    def __init__(
        self,
        paths: AppPaths,
        settings: Settings,
        options: LaunchOptions | None = None,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.paths = paths
        self.settings = settings
        settings.fast_path_changed.connect(self._fast_path_setting)
        self.options = options or LaunchOptions()
        paths.ensure()
        self.generation = GenerationSettings()
        self.jobs = JobsState()
        self.engine = EngineInfo()
        self.canvas = CanvasState()
        self.history = HistoryState(HistoryIndex(paths.history_db))
        self.fits = FitsState()
        #: How uncertainty maps are drawn (the Uncertainty panel edits it, the canvas reads it).
        self.uncertainty_view = UncertaintyView()
        #: The Video panel's state and its engine work (app/controllers/video.py).
        self.video = VideoState()
        self.video_jobs = VideoController(self.video, self.engine, self.jobs, lambda: self.client,
                                          lambda: self.output_dir, self.spawn, self)
        #: The Robustness panel's state and its probe jobs (app/controllers/robustness.py).
        self.robustness = RobustnessState()
        self.robustness_jobs = RobustnessController(self.robustness, self.generation, self.engine,
                                                    self.jobs, lambda: self.client, self.spawn,
                                                    self)
        #: The prompt boxes' token counts and installed LoRAs (app/controllers/prompt_tools.py).
        self.prompt_tools = PromptTools()
        self.prompt_tools_jobs = PromptToolsController(self.prompt_tools, self.generation,
                                                       self.engine, lambda: self.client,
                                                       self.spawn, self)
        self.video_jobs.video_saved.connect(
            lambda job_id, path, poster: self.spawn(self._store_video(job_id, path, poster)))
        self.client: EngineClient | None = None
        self.local: LocalEngine | None = None
        self._events_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending: list[GenerateParams] = []
        self._size_warned: tuple[int, int, str] | None = None  # see generate()
        self._stored: set[tuple[str, str]] = set()
        self._model_id: str | None = None
        self.engine.health_changed.connect(lambda _h: self._follow_model_size())
        self.engine.models_changed.connect(lambda _m: self._follow_model_size())
        self.engine.health_changed.connect(lambda _h: self._follow_model_fits())
        self._restore_last_params()

    # ================================================================= lifecycle
    @property
    def output_dir(self) -> Path:
        return Path(self.settings.output_dir).expanduser() if self.settings.output_dir \
            else self.paths.outputs

    @property
    def is_remote(self) -> bool:
        return bool(self.options.engine_url) or self.settings.engine_mode == REMOTE

    async def start(self) -> None:
        """Load the history, then start or reach the engine. Returns once that is under way."""
        self.history.load()
        self.spawn(self._scan_outputs())
        await self._start_engine()

    async def _start_engine(self) -> None:
        if self.options.engine_url:
            await self.connect(self.options.engine_url, self.options.engine_token or "",
                               remote=True)
        elif self.settings.engine_mode == REMOTE:
            await self.connect(self.settings.remote_url, self.settings.remote_token, remote=True)
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
                opts.engine_python or self.settings.engine_python)
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
        self.notice.emit(WARNING, f"The engine crashed (exit code {code}); restarting it. "
                                  "Queued jobs will resume.")

    def _on_engine_ready(self, url: str) -> None:
        assert self.local is not None
        self.spawn(self.connect(url, self.local.token, remote=False))

    def _on_engine_gave_up(self, message: str) -> None:
        self.engine.connection = Connection.disconnected
        self.engine.detail = message
        self.notice.emit(ERROR, message)

    async def connect(self, url: str, token: str, *, remote: bool) -> None:
        """(Re)attach to the engine at ``url``: fresh client, event stream, then a full sync."""
        await self._drop_client()
        self.engine.remote = remote
        self.engine.url = url
        if self.engine.connection is not Connection.restarting:
            self.engine.connection = Connection.connecting
        self.client = EngineClient(url, token)
        self.client.fast_path = None if self.settings.fast_path else False
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
        await self._start_engine()

    def restart_engine(self) -> None:
        """Menu action: restart the local engine (or reconnect to the remote one)."""
        self.spawn(self.reconnect())

    async def shutdown(self) -> None:
        """Stop everything: the event stream, the client, and the local engine process."""
        self.save_last_params()
        self.settings.sync()
        for task in list(self._tasks):
            task.cancel()
        await self._drop_client()
        if self.local is not None:
            await self.local.stop()
        self.history.index.close()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` on the loop, keeping a reference and reporting unexpected errors."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

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
            self.notice.emit(ERROR, f"The engine at {client.url} refused the token. "
                                    "Check the token in Settings.")

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
        """Fetch everything the event stream does not replay: health, models, samplers, jobs."""
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
        if not self.engine.remote:
            # Results finished while we were away (engine restart, reconnect) are on disk.
            for job in jobs:
                for image in job.results:
                    if (job.id, image.name) not in self._stored and \
                            image.path not in self.history.index:
                        self.spawn(self._store_result(job.id, image, show=False))
        self.spawn(self._restore_thumbnails())
        running = self.jobs.running
        if running is not None and not self.video_jobs.is_video_job(running.id) \
                and not self.robustness_jobs.is_probe(running.id):
            self.canvas.follow_job(running.id, running.image_count, running.params)
        known = self._known_sampler()
        if known is not None and not known(self.generation.sampler):
            lacking, self.generation.sampler = self.generation.sampler, samplers[0].name
            # e.g. a dropped A1111 recipe's "Restart", restored before the engine listed its
            # samplers: say so instead of switching in silence.
            self.notice.emit(WARNING, f"Sampler {lacking!r} is not one this engine has; using "
                                      f"{samplers[0].name}.")
        pending, self._pending = self._pending, []
        for params in pending:
            await self._submit(params)
        await self.refresh_fits()

    def handle_event(self, event: Event) -> None:
        """Fold one engine event into the state (public so tests can feed events)."""
        self.jobs.apply(event)
        if self.video_jobs.handle_event(event):
            return  # a video edit: the Video panel shows it, not the canvas or history
        if self.robustness_jobs.handle_event(event):
            return  # a prompt probe: the Robustness panel shows its images and report
        if isinstance(event, EngineStatus):
            self.engine.update_health(event.health)
        elif isinstance(event, JobStarted):
            self._follow(event.job_id)
        elif isinstance(event, JobProgress):
            if self.canvas.job_id != event.job_id and self.canvas.job_id == "":
                self._follow(event.job_id)
        elif isinstance(event, JobPreview):
            item = self.jobs.get(event.job_id)
            if item is not None and item.grid is not None:
                if self.canvas.job_id != event.job_id and not self._grid_shown(event.job_id):
                    self._follow(event.job_id)
                self.canvas.set_grid_preview(event.job_id, event.index,
                                             self._preview_bytes(event), event.step)
                return
            if self.canvas.job_id != event.job_id:
                self._follow(event.job_id)
            slot = item.preview_slot(event.index) if item is not None else event.index
            total = item.total if item is not None else 0
            self.canvas.set_preview(event.job_id, slot, self._preview_bytes(event), event.step,
                                    total)
        elif isinstance(event, JobResult):
            self.spawn(self._store_result(event.job_id, event.image))
        elif isinstance(event, JobFinished):
            job = event.job
            if job.kind in FIT_KINDS:
                self._fit_finished(job)
            if job.state is JobState.failed:
                self.notice.emit(ERROR, f"Job failed: {job.message or 'no reason given'}")
            elif job.state is JobState.done:
                # Results announced before we connected arrive only with the finished job.
                for image in job.results:
                    if (job.id, image.name) not in self._stored:
                        self.spawn(self._store_result(job.id, image))

    def _preview_bytes(self, event: JobPreview) -> bytes:
        item = self.jobs.get(event.job_id)
        if item is not None and event.index in item.previews:
            return item.previews[event.index]
        import base64

        return base64.b64decode(event.png_b64)

    def _follow(self, job_id: str) -> None:
        item = self.jobs.get(job_id)
        if item is not None and item.fit_kind is not None:
            return  # fits make no images
        if item is not None and item.grid is not None:
            if not self._grid_shown(job_id):
                self.canvas.follow_grid(CanvasGrid(job_id, item.grid))
        elif item is not None:
            self.canvas.follow_job(job_id, item.image_count, item.params)
        else:
            self.canvas.follow_job(job_id, 1)

    async def _store_result(self, job_id: str, image: ResultImage, *, show: bool = True) -> None:
        """Make the result local (engine wrote it here, or download it), index it, show it."""
        key = (job_id, image.name)
        if key in self._stored or image.role == "video":
            return
        self._stored.add(key)
        loop = asyncio.get_running_loop()
        local_path = Path(image.path)
        data: bytes | None = None
        if not self.engine.remote and local_path.is_file():
            data = await loop.run_in_executor(None, local_path.read_bytes)
            path = local_path
        else:
            if self.client is None:
                self._stored.discard(key)
                return
            data = await self.client.file(job_id, image.name)
            # Same layout as the local engine: outputs/<date>/<name>.
            folder = self.output_dir / time.strftime("%Y-%m-%d")
            path = await loop.run_in_executor(None, _save_unique, folder, image.name, data)
        umap = await self._fetch_map(job_id, image, path) if image.uncertainty else None
        item = self.jobs.get(job_id)
        if show and item is not None and item.grid is not None:
            if not self._grid_shown(job_id) and (self.canvas.job_id in ("", job_id) or
                                                 self._is_latest(job_id)):
                self._follow(job_id)
            if image.cell is not None:
                self.canvas.set_grid_result(job_id, image.cell, data, path=path, seed=image.seed)
            elif image.role == "grid":
                self.canvas.set_grid_sheet(job_id, path)
        elif show:
            if self.canvas.job_id != job_id and (self.canvas.job_id == "" or
                                                 self._is_latest(job_id)):
                self._follow(job_id)
            self.canvas.set_result(job_id, image.index, data, path=path, seed=image.seed,
                                   width=image.width, height=image.height, uncertainty=umap)
        self.jobs.set_thumbnail(job_id, data)
        params = item.params if item is not None and item.params is not None else None
        if params is None:
            try:
                params = await loop.run_in_executor(None, recipe_from_file, path)
            except RecipeError:
                params = GenerateParams(width=image.width, height=image.height)
        entry = self.history.index.add(path, params, seed=image.seed, width=image.width,
                                       height=image.height, job_id=job_id)
        self.history.add(entry)

    async def _store_video(self, job_id: str, path: Path, poster: bytes) -> None:
        """An edited video enters the History (found by its target prompt, shown by its first
        frame, saved beside it as ``<name>.poster.png``)."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, poster_path(path).write_bytes, poster)
        except OSError as exc:
            log.warning("video poster %s: %s", poster_path(path), exc)
        v = self.video
        info = v.result_info or {}
        width, height = int(info.get("width") or 0), int(info.get("height") or 0)
        params = GenerateParams(prompt=v.target_prompt, width=max(8, width or 512),
                                height=max(8, height or 512))
        entry = self.history.index.add(path, params, seed=v.seed, width=width, height=height,
                                       job_id=job_id)
        self.history.add(entry)

    async def _restore_thumbnails(self) -> None:
        """Queue cards of jobs finished in an earlier session get their picture back: the
        first image the History holds for each (a video's poster), read off the UI thread."""
        loop = asyncio.get_running_loop()
        for item in self.jobs.ordered():
            if item.thumbnail_final or item.state is not JobState.done:
                continue
            entries = [e for e in self.history.index.by_job(item.id)
                       if thumbnail_source(e.path).is_file()]
            if not entries:
                continue
            try:
                data = await loop.run_in_executor(
                    None, thumbnail_source(entries[0].path).read_bytes)
            except OSError:
                continue
            self.jobs.set_thumbnail(item.id, data)

    async def _fetch_map(self, job_id: str, image: ResultImage,
                         png: Path) -> UncertaintyMap | None:
        """The image's uncertainty map, made local beside its PNG (downloaded from a remote
        engine), read into memory; None with a notice if it cannot be had."""
        info = image.uncertainty
        assert info is not None
        loop = asyncio.get_running_loop()
        engine_copy = Path(image.path).with_name(info.map_name)
        try:
            if not self.engine.remote and engine_copy.is_file():
                target = engine_copy
            else:
                if self.client is None:
                    return None
                data = await self.client.file(job_id, info.map_name)
                target = map_path(png)
                await loop.run_in_executor(None, target.write_bytes, data)
            return await loop.run_in_executor(None, load_map, target, info.score)
        except (EngineError, OSError, ValueError) as exc:
            self.notice.emit(WARNING, f"The uncertainty map of {png.name} could not be read: "
                             f"{exc}")
            return None

    async def _attach_maps(self, images: list[CanvasImage]) -> None:
        """Saved images shown again: their maps, where one was saved beside them."""
        loop = asyncio.get_running_loop()
        for image in images:
            if image.path is not None and image.uncertainty is None:
                umap = await loop.run_in_executor(None, find_map, image.path)
                if umap is not None:
                    self.canvas.set_uncertainty(image, umap)

    def _grid_shown(self, job_id: str) -> bool:
        """The canvas holds this job's grid (shown, or behind one of its opened cells)."""
        return self.canvas.grid is not None and self.canvas.grid.job_id == job_id

    def _is_latest(self, job_id: str) -> bool:
        current = self.jobs.get(self.canvas.job_id)
        return current is None or current.state.finished

    async def _scan_outputs(self) -> None:
        """Index images that reached the outputs folder while the app was closed."""
        folder = self.output_dir
        known = self.history.index.paths()
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(None, _unindexed_pngs, folder, known)
        added = False
        for path, params, mtime in found:
            self.history.index.add(path, params, created=mtime)
            added = True
        if added:
            self.history.load()

    # ================================================================= user actions
    def generate(self) -> None:
        """Queue a job with the Prompt dock's settings (never blocked by a running job)."""
        params = self.generation.validated_params()
        if params is None:
            errors = self.generation.errors
            name, msg = next(iter(errors.items()))
            self.notice.emit(ERROR, f"{_label(name)}: {msg}")
            return
        size = self.size_warning()
        key = (params.width, params.height, self.engine.active_model.id
               if self.engine.active_model is not None else "")
        if size and key != self._size_warned:  # once per size and model: a warning, not a nag
            self._size_warned = key
            self.notice.emit(WARNING, f"Queued anyway. {size}")
        if self.client is None or not self.engine.connection.usable:
            self._pending.append(params)
            self.notice.emit(INFO, "The engine is not ready yet; the job will be sent when it is.")
            return
        self.spawn(self._submit(params))

    def retry(self, params: GenerateParams) -> None:
        """Queue ``params`` again as they were asked (the canvas's right-click → Retry)."""
        if self.client is None or not self.engine.connection.usable:
            self._pending.append(params)
            self.notice.emit(INFO, "The engine is not ready yet; the job will be sent when it is.")
            return
        self.spawn(self._submit(params))

    async def _submit(self, params: GenerateParams) -> None:
        assert self.client is not None
        try:
            job = await self.client.submit(params)
        except ApiError as exc:
            errors = {field_of(f) or "": m for f, m in exc.field_messages().items()}
            errors.pop("", None)
            if errors:
                self.generation.set_errors(errors)
                name, msg = next(iter(errors.items()))
                self.notice.emit(ERROR, f"{_label(name)}: {msg}")
            else:
                self.notice.emit(ERROR, exc.message)
            return
        self.jobs.upsert(job)

    def compare(self, choice: GridChoice) -> None:
        """Queue one ``sampler_grid`` job: the current prompt and seed across ``choice``."""
        problem = choice.problem()
        params = self.generation.validated_params()
        if problem or params is None:
            self.notice.emit(ERROR, problem or "Fix the highlighted fields first.")
            return
        grid = choice.to_params(params)
        if self.client is None or not self.engine.connection.usable:
            self.notice.emit(WARNING, "The engine is not ready yet; try again in a moment.")
            return
        self.spawn(self._submit_job(JobSubmit(job=SamplerGridJob(params=grid)), "Comparison"))

    async def _submit_job(self, submit: JobSubmit, what: str) -> None:
        assert self.client is not None
        try:
            job = await self.client.submit_job(submit)
        except ApiError as exc:
            self.notice.emit(ERROR, f"{what}: {exc.message}")
            return
        self.jobs.upsert(job)

    def make_variations(self, step: int, count: int) -> None:
        """BayesDiff's "variations from here": the shown image's recipe re-run to ``step``,
        each of ``count`` images resampling x_t from N(E[x_t], Var[x_t]), then finished."""
        image = self.canvas.current_image
        if image is None or image.params is None or image.seed is None or image.seed < 0:
            self.notice.emit(WARNING, "Open an image (with its recipe) to make variations of it.")
            return
        if self.client is None or not self.engine.connection.usable:
            self.notice.emit(WARNING, "The engine is not connected.")
            return
        base = image.params.with_seed(image.seed)
        group = (base.uncertainty or UncertaintyOptions()).model_copy(update={
            "map": True, "variation_step": max(0, min(step, base.steps - 1)),
            "variation_seed": -1})
        params = base.model_copy(update={"uncertainty": group,
                                         "batch_size": max(1, min(16, count)), "batch_count": 1})
        self.spawn(self._submit(params))

    def fit_now(self, kind: str) -> None:
        """Queue an analytic or calibration fit of the loaded model (progress in the Queue)."""
        if self.client is None or not self.engine.connection.usable:
            self.notice.emit(WARNING, "The engine is not connected.")
            return
        if self.jobs.active_fit(kind) is not None:
            self.notice.emit(INFO, f"A {FIT_NAMES[kind]} fit is already in the queue.")
            return
        model = self.engine.active_model.id if self.engine.active_model else self.fits.model or None
        if kind == "uncertainty":
            submit = JobSubmit(job=UncertaintyFitJob(params=UncertaintyFitParams(model=model)))
        elif kind == "analytic":
            spacing = self.generation.option("timestep_spacing")
            steps = sorted({*ANALYTIC_FIT_STEPS, self.generation.steps})
            job = AnalyticFitJob(params=AnalyticFitParams(
                model=model, steps=steps, samples_per_step=ANALYTIC_SAMPLES_PER_STEP,
                timestep_spacing=spacing if isinstance(spacing, str) else None))
            submit = JobSubmit(job=job)
        else:
            submit = JobSubmit(job=CalibrationFitJob(params=CalibrationFitParams(
                model=model, timesteps=CALIBRATION_TIMESTEPS,
                data=FitData(count=CALIBRATION_IMAGES))))
        self.spawn(self._submit_job(submit, f"{FIT_NAMES[kind]} fit"))

    def _fit_finished(self, job) -> None:
        name = FIT_NAMES.get(FIT_KINDS.get(job.kind, ""), "")
        if job.state is JobState.done:
            fit = job.fit
            detail = f" on {fit.images} images" if fit is not None else ""
            self.notice.emit(INFO, f"{name} fit done{detail}.")
            if job.kind == "uncertainty_fit":
                self.generation.clear_error("uncertainty")
        self.spawn(self.refresh_fits())

    async def refresh_fits(self) -> None:
        """Re-read the loaded model's fits (after connect, a model change or a fit job)."""
        client = self.client
        if client is None:
            return
        model = self.engine.active_model
        try:
            fits = await client.fits(model.id if model is not None else None)
        except ApiError as exc:
            self.fits.problem = exc.message
            return
        if client is not self.client:
            return
        self.fits.problem = ""
        self.fits.model = model.id if model is not None else (fits[0].model if fits else "default")
        self.fits.fits = fits

    def _follow_model_fits(self) -> None:
        model = self.engine.active_model
        if model is not None and model.id != self.fits.model and self.client is not None:
            self.spawn(self.refresh_fits())

    def open_grid_cell(self, row: int, col: int) -> None:
        """Show one grid cell large, with its recipe."""
        if not self.canvas.open_cell(row, col):
            self.notice.emit(INFO, "That cell is not rendered yet.")

    def cancel(self, job_id: str) -> None:
        """Cancel one job; a queued one never starts, the running one stops within a step."""
        self.spawn(self._cancel(job_id))

    async def _cancel(self, job_id: str) -> None:
        if self.client is None:
            return
        job = await self.client.cancel(job_id)
        self.jobs.upsert(job)

    def move(self, job_id: str, position: int) -> None:
        """Move a queued job to ``position`` among the queued jobs (0 = next)."""
        queued = self.jobs.queued_ids()
        if job_id not in queued:
            return
        position = max(0, min(position, len(queued) - 1))
        if queued.index(job_id) == position:
            return
        # Optimistic: reorder now, the engine's answer (and queue event) confirms.
        queued.remove(job_id)
        queued.insert(position, job_id)
        self.jobs.reorder(queued)
        self.spawn(self._move(job_id, position))

    async def _move(self, job_id: str, position: int) -> None:
        if self.client is None:
            return
        jobs = await self.client.move(job_id, position)
        self.jobs.set_order(jobs)

    def move_by(self, job_id: str, delta: int) -> None:
        queued = self.jobs.queued_ids()
        if job_id in queued:
            self.move(job_id, queued.index(job_id) + delta)

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

    def open_history(self, entry: HistoryEntry) -> None:
        """Show a saved image on the canvas."""
        self.spawn(self._open_history(entry))

    async def _open_history(self, entry: HistoryEntry) -> None:
        if not entry.exists:
            self.notice.emit(WARNING, f"{entry.path.name} is gone from disk; removed from history.")
            self.history.remove(entry)
            return
        if is_video(entry.path):
            self.video_opened.emit(str(entry.path))  # the window shows it in the Video panel
            return
        if await self._show_grid_file(entry.path):
            return
        data = await asyncio.get_running_loop().run_in_executor(None, entry.path.read_bytes)
        image = CanvasImage(data=data, path=entry.path, seed=entry.seed, width=entry.width,
                            height=entry.height, params=entry.params)
        self.canvas.show_image(image)
        await self._attach_maps([image])

    async def _show_grid_file(self, path: Path) -> bool:
        """A saved comparison grid opens as a grid again, its cells clickable; False if the
        file is not one."""
        loop = asyncio.get_running_loop()
        saved = await loop.run_in_executor(None, grid_from_file, path)
        if saved is None:
            return False
        key = f"file:{path}"
        self.canvas.follow_grid(CanvasGrid(key, saved.params))
        for cell, cell_path in saved.cells:
            data = await loop.run_in_executor(None, cell_path.read_bytes)
            entry = self.history.index.get(cell_path)
            self.canvas.set_grid_result(key, cell, data, path=cell_path,
                                        seed=entry.seed if entry is not None else None)
        self.canvas.set_grid_sheet(key, path)
        missing = self.canvas.grid.cell_count - len(saved.cells) if self.canvas.grid else 0
        if missing:
            self.notice.emit(INFO, f"{missing} cell image(s) of this grid are no longer beside "
                             "it; those cells stay empty.")
        return True

    def open_job(self, job_id: str) -> None:
        """Show a finished job's images on the canvas (Queue dock click)."""
        self.spawn(self._open_job(job_id))

    async def _open_job(self, job_id: str) -> None:
        entries = [e for e in self.history.index.by_job(job_id) if e.exists]
        if not entries:
            self.notice.emit(INFO, "This job's images are not in the history (any more).")
            return
        loop = asyncio.get_running_loop()
        images = []
        for e in entries:
            data = await loop.run_in_executor(None, e.path.read_bytes)
            images.append(CanvasImage(data=data, path=e.path, seed=e.seed, width=e.width,
                                      height=e.height, params=e.params))
        self.canvas.show_images(images)
        await self._attach_maps(images)

    def use_settings(self, params: GenerateParams | None, source: str = "") -> None:
        """Put a recipe into the Prompt dock."""
        if params is None:
            self.notice.emit(WARNING, "No settings stored with this image.")
            return
        self.generation.apply(params)
        message = f"Settings restored{' from ' + source if source else ''}."
        size = self.size_warning()
        self.notice.emit(WARNING if size else INFO, f"{message} {size}".strip())

    def restore_from_file(self, path: Path | str) -> bool:
        """A file was dropped: restore its recipe (the current settings stay if that fails)."""
        path = Path(path)
        try:
            recipe = read_recipe(path)
        except RecipeError as exc:
            self.notice.emit(ERROR, str(exc))
            return False
        params = recipe.params
        self.generation.apply(params, fields=recipe.fields)
        warn, message = describe(recipe, path.name, self._known_sampler())
        size = self.size_warning()
        if size and ("width" in recipe.fields or "height" in recipe.fields):
            warn, message = True, f"{message} {size}"
        self.notice.emit(WARNING if warn else INFO, message)
        self.spawn(self._show_file(path, params))
        return True

    def size_warning(self) -> str:
        """A sentence when the Prompt panel's size is far from the loaded model's native size
        (state/model_size.py), else ''."""
        g = self.generation
        return size_warning(g.width, g.height, self.engine.active_model)

    def _known_sampler(self):
        """``name -> bool`` for the engine's samplers (aliases included), or None before the
        engine has listed them."""
        from .state.sampler import resolve

        samplers = self.engine.samplers
        if not samplers:
            return None
        return lambda name: resolve(name, samplers)[0] is not None

    async def _show_file(self, path: Path, params: GenerateParams) -> None:
        if await self._show_grid_file(path):
            return
        data = await asyncio.get_running_loop().run_in_executor(None, path.read_bytes)
        image = CanvasImage(data=data, path=path, seed=params.seed, width=params.width,
                            height=params.height, params=params)
        self.canvas.show_image(image)
        await self._attach_maps([image])

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

    def _follow_model_size(self) -> None:
        """When the loaded model changes, move an untouched size to the new model's native one.

        "Untouched" means the size still equals the previous model's native square (or the
        default 512): a size the user chose is never overridden.
        """
        model = self.engine.active_model
        if model is None or model.id == self._model_id:
            return
        previous = next((m for m in self.engine.models if m.id == self._model_id), None)
        self._model_id = model.id
        new = native_size(model)
        old = native_size(previous) if previous is not None else GenerateParams().width
        g = self.generation
        if new and old and new != old and (g.width, g.height) == (old, old):
            g.set_size(new, new)
            self.notice.emit(INFO, f"Size set to {new}×{new}, the native size of {model.name}.")

    # ================================================================= persistence
    def save_last_params(self) -> None:
        try:
            self.settings.last_params = self.generation.to_params().model_dump_json()
        except ValueError:
            pass

    def _restore_last_params(self) -> None:
        if self.settings.last_params:
            try:
                self.generation.apply(GenerateParams.model_validate_json(self.settings.last_params))
            except ValueError:
                pass


_LABELS = {
    "prompt": "Prompt", "negative_prompt": "Negative prompt", "width": "Width",
    "height": "Height", "steps": "Steps", "cfg_scale": "CFG scale", "sampler": "Sampler",
    "seed": "Seed", "batch_size": "Batch size", "batch_count": "Batch count", "model": "Model",
}


def _label(name: str) -> str:
    return _LABELS.get(name, name.replace("_", " ").capitalize())


def _save_unique(folder: Path, name: str, data: bytes) -> Path:
    """Write ``data`` as ``folder/name``, adding ``-1``, ``-2``… rather than overwrite."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Path(name).name
    n = 1
    while target.exists():
        target = folder / f"{Path(name).stem}-{n}{Path(name).suffix}"
        n += 1
    target.write_bytes(data)
    return target


def _unindexed_pngs(folder: Path, known: set[str]) -> list[tuple[Path, GenerateParams, float]]:
    """PNGs under ``folder`` with a readable recipe and no history row yet (worker thread)."""
    found: list[tuple[Path, GenerateParams, float]] = []
    if not folder.is_dir():
        return found
    start = time.monotonic()
    for path in folder.rglob("*.png"):
        if str(path.resolve()) in known:
            continue
        if time.monotonic() - start > 20 or len(found) > 2000:
            break
        try:
            params = recipe_from_file(path)
        except RecipeError:
            continue
        found.append((path, params, path.stat().st_mtime))
    return found
