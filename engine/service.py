"""The engine as one object: registry, model manager, queue and event bus wired together."""

from __future__ import annotations

import contextlib
import functools
import logging
import platform
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import EngineError
from engine.events import EventBus
from engine.jobs import JobQueue
from engine.models.loader import ModelManager
from engine.models.registry import ModelRegistry
from engine.protocol import EngineState, EngineStatus, FitInfo, Health, ModelInfo
from engine.store import JobStore

log = logging.getLogger(__name__)


@functools.cache
def _gpu_name(device: str) -> str:
    """The accelerator's name for Health (About box, diagnostics); '' on CPU."""
    import torch

    try:
        if device.startswith("cuda") and torch.cuda.is_available():
            return torch.cuda.get_device_name(torch.device(device))
        if device == "mps":
            return "Apple GPU (MPS)"
    except Exception:  # noqa: BLE001 - a name is cosmetic; never fail health on it
        return ""
    return ""


@dataclass
class EngineConfig:
    data_dir: Path
    output_dir: Path | None = None
    models_dirs: list[Path] = field(default_factory=list)
    model: str | None = None  # id or path of the model to use when a job names none
    device: str = "auto"
    dtype: str = "auto"  # auto, fp16, bf16, fp32 (engine.models.loader.pick_dtype)
    fast_path: str = "auto"  # auto (on with CUDA), on, off: engine/fast_path.py
    offload: str = "none"  # none, t5-cpu, model: engine/models/placement.py
    preload: bool = False
    max_upload_mb: int | None = None  # None: engine.video_protocol.MAX_UPLOAD_BYTES


class Engine:
    def __init__(self, config: EngineConfig) -> None:
        from engine import __version__
        from engine.fits import FitStore
        from engine.kinds import runners

        self.config = config
        self.version = __version__
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.output_dir = config.output_dir or config.data_dir / "outputs"
        extra = [Path(config.model)] if config.model and Path(config.model).exists() else []
        self.registry = ModelRegistry([config.data_dir / "models", *config.models_dirs], extra)
        from engine.fast_path import FastPath
        from engine.models.loader import pick_device

        fast_on = config.fast_path == "on" or (
            config.fast_path == "auto" and pick_device(config.device).startswith("cuda")
        )
        self.fast = FastPath(config.data_dir / "cache" / "torch-compile", enabled=fast_on)
        self.models = ModelManager(config.device, config.dtype, self.fast, config.offload)
        from engine.video import annotators

        self.models.on_unload.append(annotators.release)  # they live as long as the model
        self.bus = EventBus()
        self.store = JobStore(config.data_dir / "engine.sqlite")
        self.fits = FitStore(config.data_dir / "fits")
        from engine.video.uploads import UploadStore

        limit = {"max_bytes": config.max_upload_mb * 2**20} if config.max_upload_mb else {}
        self.uploads = UploadStore(config.data_dir / "uploads", **limit)
        default = str(extra[0].resolve()) if extra else config.model
        self.queue = JobQueue(
            self.store,
            self.bus,
            self.models,
            self.registry,
            self.output_dir,
            runners=runners(self),
            default_model=default,
        )
        self.queue.around_job = self._around_job
        self.fast.on_change = self._announce

    def start(self) -> None:
        self.queue.start(on_state=self._announce)
        if self.config.preload:
            import threading

            threading.Thread(target=self._preload, name="preload", daemon=True).start()

    def stop(self) -> None:
        self.queue.stop()
        self.store.close()

    def health(self) -> Health:
        import diffusers
        import torch

        current = self.models.current
        if self.queue.stage == "loading":
            state = EngineState.loading
        elif self.queue.running_id:
            state = EngineState.busy
        else:
            state = EngineState.ready
        used, total, peak = self.models.memory()
        return Health(
            version=self.version,
            state=state,
            device=self.models.device,
            dtype=str(self.models.dtype).removeprefix("torch."),
            model=current.info.id if current else None,
            default_model=current.info.id if current else self._default_id(),
            memory_used=used,
            memory_total=total,
            memory_peak=peak,
            queued=self.queue.queued_count(),
            torch=torch.__version__,
            diffusers=diffusers.__version__,
            gpu=_gpu_name(self.models.device),
            python=platform.python_version(),
            fast_path=self.fast.state,
            fast_path_detail=self.fast.detail,
            offload=current.offload if current else self.models.offload,
            offload_detail=current.offload_detail if current else "",
        )

    @contextlib.contextmanager
    def _around_job(self, job):
        """A job's ``fast_path``: false runs it eager; true turns the fast path on for this and
        later models (this job still runs eager while it warms up)."""
        from engine.fast_path import applies_to, job_allows

        if job.fast_path and not self.fast.enabled:
            self.fast.enabled = True
            current = self.models.current
            if current is not None:
                self.fast.attach(current.pipe, current.device)
            self._announce()
        with job_allows(job.fast_path is not False and applies_to(job)):
            yield

    def _default_id(self) -> str | None:
        """The model a job naming none would load, from the registry's last scan: Health runs
        on the event loop, where a rescan (a stat per model folder, every model's files read)
        held every other request up."""
        known = self.registry.known()
        wanted = self.queue.default_model
        if wanted:
            return next((m.id for m in known if wanted in (m.id, m.path)), None)
        found = self.registry.default(known)
        return found.id if found else None

    def list_models(self) -> list[ModelInfo]:
        loaded = self.models.current.info.path if self.models.current else None
        return [m.model_copy(update={"loaded": m.path == loaded}) for m in self.registry.scan()]

    def load_model(self, model: str | None, offload: str | None = None) -> ModelInfo:
        info = self.queue.resolve_model(model)
        with self.models.lock:  # waits for the job in progress
            self.queue.stage = "loading"
            self._announce()
            try:
                return self.models.load(info, offload).info
            finally:
                self.queue.stage = ""
                self._announce()

    def list_fits(self, model: str | None) -> list[FitInfo]:
        """The cached fits of a model (the loaded or default one if None), newest first."""
        info = self.queue.resolve_model(model)
        return self.fits.list(self.fits.model_hash(info))

    def unload_model(self) -> None:
        self.models.unload()
        self._announce()

    def _preload(self) -> None:
        try:
            self.load_model(None)
        except EngineError as exc:
            log.warning("could not preload the default model: %s", exc.message)

    def _announce(self) -> None:
        self.bus.publish(EngineStatus(health=self.health()))
