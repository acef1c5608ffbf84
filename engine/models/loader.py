"""Loading and unloading pipelines: device and dtype choice, memory accounting.

Only the GPU worker thread calls :meth:`ModelManager.load` and runs the pipeline; the lock makes
the HTTP endpoints that load or unload wait for the job in progress instead of racing it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import gc_pauses
from engine.errors import ModelLoadError
from engine.protocol import ModelInfo

log = logging.getLogger(__name__)


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError("CUDA was requested but no CUDA GPU is visible to torch")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


#: ``--dtype`` choices and the torch dtype each names; "auto" is resolved by :func:`pick_dtype`.
DTYPE_NAMES = {
    "fp16": "float16",
    "bf16": "bfloat16",
    "fp32": "float32",
    "float16": "float16",
    "bfloat16": "bfloat16",
    "float32": "float32",
}


def pick_dtype(device: str, requested: str = "auto"):
    """The weights' dtype: ``requested`` (fp16, bf16, fp32), or for "auto" float16 on a GPU
    (CUDA, MPS) and float32 on the CPU, where half precision is slower and only emulated."""
    import torch

    if requested != "auto":
        try:
            return getattr(torch, DTYPE_NAMES[requested])
        except KeyError:
            raise ModelLoadError(
                f"Unknown dtype {requested!r}: use auto, fp16, bf16 or fp32"
            ) from None
    return torch.float16 if device.startswith(("cuda", "mps")) else torch.float32


@dataclass
class LoadedModel:
    info: ModelInfo
    pipe: Any
    device: str
    dtype: Any
    base_scheduler_config: dict
    preview: Any  # engine.previews.LatentPreviewer
    param_bytes: int
    offload: str = "none"  # engine/models/placement.py
    offload_detail: str = ""


class ModelManager:
    def __init__(
        self, device: str = "auto", dtype: str = "auto", fast=None, offload: str = "none"
    ) -> None:
        self.requested_device = device
        self.requested_dtype = dtype
        #: engine/models/placement.py: "none", "t5-cpu" or "model" for the next loads.
        self.offload = offload
        #: engine.fast_path.FastPath: compiles each model after it loads, if enabled.
        self.fast = fast
        self.lock = threading.RLock()
        self.current: LoadedModel | None = None
        #: Called when the model goes (unload or switch): caches that live as long as it does,
        #: e.g. the video annotators, drop their weights here.
        self.on_unload: list[Callable[[], None]] = []

    @property
    def device(self) -> str:
        return self.current.device if self.current else pick_device(self.requested_device)

    @property
    def dtype(self):
        """The dtype of the loaded model, or the one the next load will use."""
        return self.current.dtype if self.current else pick_dtype(self.device, self.requested_dtype)

    def load(self, info: ModelInfo, offload: str | None = None) -> LoadedModel:
        """Load ``info`` (a no-op if it is loaded with the same placement); ``offload`` sets
        the placement for this and later loads (None keeps the engine's)."""
        from engine.models.placement import OFFLOAD_MODES, place

        if offload is not None:
            if offload not in OFFLOAD_MODES:
                raise ModelLoadError(
                    f"Unknown offload {offload!r}: use one of {', '.join(OFFLOAD_MODES)}", "offload"
                )
            self.offload = offload
        with self.lock:
            if (
                self.current
                and self.current.info.path == info.path
                and self.current.offload == self.offload
            ):
                return self.current
            self.unload()
            device = pick_device(self.requested_device)
            if device.startswith("cuda"):
                import torch

                torch.cuda.reset_peak_memory_stats()
            dtype = pick_dtype(device, self.requested_dtype)
            log.info("loading %s (%s) on %s/%s", info.id, info.format, device, dtype)
            pipe = _load_pipeline(info, dtype)
            try:
                offload_detail = place(pipe, device, dtype, self.offload)
            except Exception as exc:  # OOM while moving weights, most likely
                del pipe
                self._free()
                raise ModelLoadError(f"Could not move {info.name} to {device}: {exc}") from exc
            pipe.set_progress_bar_config(disable=True)
            from engine import vae_decode
            from engine.previews import LatentPreviewer

            vae_decode.install(pipe.vae)  # no black/NaN image from a float16 overflow

            self.current = LoadedModel(
                info=info.model_copy(update={"loaded": True}),
                pipe=pipe,
                device=device,
                dtype=dtype,
                base_scheduler_config=dict(pipe.scheduler.config),
                preview=LatentPreviewer.fit(pipe.vae, device, dtype),
                param_bytes=_param_bytes(pipe),
                offload=self.offload,
                offload_detail=offload_detail,
            )
            # the compiled fast path's CUDA graphs need weights that stay put
            if self.fast is not None and self.offload != "model":
                self.fast.attach(pipe, device)  # warms up in the background
            gc_pauses.settle()  # the model's objects out of the collector's full passes
            return self.current

    def unload(self) -> None:
        """Drop the pipeline and give its memory back to the GPU and the OS."""
        with self.lock:
            if self.current is None:
                return
            if self.fast is not None:
                self.fast.detach(self.current.pipe)
            self.current = None
            for hook in self.on_unload:
                hook()
            self._free()

    def memory(self) -> tuple[int, int, int]:
        """(bytes used by the model, total bytes of the device, peak bytes on the GPU)."""
        import torch

        dev = self.device
        if dev.startswith("cuda"):
            _free, total = torch.cuda.mem_get_info()
            return torch.cuda.memory_allocated(), total, torch.cuda.max_memory_allocated()
        used = self.current.param_bytes if self.current else 0
        return used, _host_memory(), 0

    @staticmethod
    def _free() -> None:
        import torch

        gc_pauses.collect_everything()  # frozen too: the unloaded model's reference cycles
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            torch.mps.empty_cache()
        _trim_host_heap()


def _load_pipeline(info: ModelInfo, dtype):
    path = Path(info.path)
    if not path.exists():
        raise ModelLoadError(f"{path} does not exist any more: was it moved or deleted?", "model")
    try:
        if info.format == "single_file" and info.architecture in ("sd3", "flux"):
            from engine.models.flow_single_file import load_flow_single_file

            return load_flow_single_file(path, torch_dtype=dtype)
        if info.format == "single_file":
            from engine.models.single_file import load_single_file

            return load_single_file(path, torch_dtype=dtype)
        from diffusers import DiffusionPipeline

        return DiffusionPipeline.from_pretrained(
            path,
            torch_dtype=dtype,
            local_files_only=True,
            safety_checker=None,
            requires_safety_checker=False,
        )
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"Could not load {info.name} from {path}: {type(exc).__name__}: {exc}. "
            "Check that the folder is a complete diffusers model (or the file a complete "
            ".safetensors checkpoint) and not truncated.",
            "model",
        ) from exc


def _param_bytes(pipe) -> int:
    import torch

    total = 0
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            total += sum(p.numel() * p.element_size() for p in component.parameters())
    return total


def _host_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def _trim_host_heap() -> None:
    """Return freed heap pages to the OS (glibc keeps them otherwise)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
