"""The fast path: a compiled UNet and VAE decoder, warmed in the background, eager as reference.

What it does to a loaded pipeline (the recipe of PyTorch's "Accelerating Generative AI III:
Diffusion, Fast" and diffusers' torch.compile guide, minus what costs minutes of compile time):

- the UNet and VAE in ``channels_last`` (convolutions without layout transposes);
- fused QKV projections (one matmul for q, k, v in self-attention, one for k, v in cross);
- PyTorch SDPA attention (flash / memory-efficient kernels; diffusers' default processor);
- ``torch.compile`` of the UNet's forward and of the VAE decoder, with CUDA graphs on CUDA
  (mode ``reduce-overhead``: a denoising step is a graph replay, no launch gaps); inductor's
  ``conv_1x1_as_mm`` and ``coordinate_descent_tuning`` as those posts found best for UNets.
  ``SFUMATO_COMPILE_MODE`` overrides the mode (e.g. ``max-autotune`` for the last few percent at
  minutes of compile).

Recompiles are what make a compiled path slow in an app, so the UNet is entered through
:class:`_CompiledForward`, which makes its inputs look the same from job to job:

- the timestep is always a float32 tensor of shape (B,) on the device: schedulers hand over
  int64 (DDIM), float32 (Euler, DPM++) or a Python number, each a different graph otherwise;
- the batch is padded up to a bucket (1, 2, 4, 8, 16, 32: CFG doubles it) by repeating the
  last row, and the output cut back: batch 3 runs the batch-4 graph (the decoder's too);
- a new resolution recompiles, with height and width dynamic from then on (dynamo's automatic
  dynamic shapes, duck sizing off so a square size does not tie height to width), so further
  sizes reuse that graph. Measured on the CPU (tests/engine/test_fast_path.py): the first new
  size recompiles the UNet and the decoder once; the decoder once more where a convolution's
  size-dependent choice flips (past 128·h·w = 20480 latent elements on the CPU); then no size
  recompiles, except a size whose latent does not halve evenly through the UNet (diffusers
  then takes its explicit-upsample-size branch: one recompile more).

Sampler, seed, prompt, CFG scale and step count never reach the compiled graph as anything but
tensor values of a fixed shape and dtype: they never recompile (tests/engine/test_fast_path.py
counts compiles).

Methods that change the UNet's output (calibration) are named hooks after the forward
(engine/hooks.py), eager, outside the graph.

LoRAs named in a prompt go into resident adapter slots, hotswapped in place
(engine/prompts/lora_slots.py): the first LoRA job installs the slots (q/k/v unfused) and
compiles that tree once more in the background (:meth:`FastPath.rewarm`; that job runs eager);
jobs without LoRAs take the slots out again (the graph compiled at load). Switching LoRAs after
the first never recompiles. ``lora_rank``/``lora_slots`` (``SFUMATO_LORA_SLOT_RANK``,
``SFUMATO_LORA_SLOTS``) size them; LoRAs that do not fit run eager, and Health says why.

The compile cache lives in the engine's data folder: inductor's FX graph cache and Triton's
kernels under ``cache/torch-compile``, and torch's portable "mega-cache"
(:func:`torch.compiler.save_cache_artifacts`) saved after each warm-up and loaded before the next,
so a second start compiles nothing. Warm-up runs in a background thread after a model loads;
until it is done, and in any job that asks for ``fast_path: false``, the eager forward runs:
no job waits for a compile. A failed compile is logged, reported in Health, and the engine
stays eager.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from engine import gc_pauses

log = logging.getLogger(__name__)

BUCKETS = (1, 2, 4, 8, 16, 32)
_MARK = "_sfumato_fast_path"
_local = threading.local()


def default_mode(device: str) -> str:
    """``reduce-overhead`` (inductor + CUDA graphs) on CUDA, ``default`` elsewhere."""
    env = os.environ.get("SFUMATO_COMPILE_MODE")
    if env:
        return env
    return "reduce-overhead" if device.startswith("cuda") else "default"


def bucket(n: int) -> int:
    """The batch size the compiled graph runs for a batch of ``n``."""
    for b in BUCKETS:
        if n <= b:
            return b
    return n


def _pad(x: Any, n: int, to: int) -> Any:
    """Pad every tensor whose first dimension is the batch (``n``) to ``to`` rows."""
    if isinstance(x, torch.Tensor):
        if x.dim() and x.shape[0] == n and to > n:
            return torch.cat([x, x[-1:].expand(to - n, *x.shape[1:])])
        return x
    if isinstance(x, dict):
        return {k: _pad(v, n, to) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_pad(v, n, to) for v in x)
    return x


def owner(pipe) -> FastPath | None:
    """The fast path that compiled ``pipe``'s UNet, if one did."""
    unet = getattr(pipe, "unet", None)
    return vars(unet).get(_MARK) if unet is not None else None


def applies_to(job) -> bool:
    """Whether ``job`` may run compiled: its kind's ``compiled`` in engine/kinds.py (text-to-image
    does; fits, uncertainty and video edits swap things inside the UNet that a compiled graph
    would guard on and recompile for, and run eager)."""
    from engine.kinds import KINDS

    kind = KINDS.get(job.kind)
    return kind is not None and kind.compiled(job.spec)


@contextlib.contextmanager
def job_allows(allowed: bool) -> Iterator[None]:
    """Within the block (one job, on the worker thread), use the compiled forwards if
    ``allowed`` and they are warm; eager otherwise."""
    before = getattr(_local, "allowed", True)
    _local.allowed = allowed
    try:
        yield
    finally:
        _local.allowed = before


@contextlib.contextmanager
def _forced() -> Iterator[None]:
    _local.forced = True
    try:
        yield
    finally:
        _local.forced = False


class _CompiledForward:
    """The UNet's (or the decoder's) ``forward``: compiled when warm and allowed, else eager."""

    def __init__(self, fast: FastPath, module: torch.nn.Module, compiled, unet: bool) -> None:
        self.fast, self.module, self.compiled, self.unet = fast, module, compiled, unet
        self.eager = type(module).forward.__get__(module)

    def use_compiled(self) -> bool:
        if getattr(_local, "forced", False):
            return True
        return self.fast.state == "on" and getattr(_local, "allowed", True)

    def __call__(self, *args, **kwargs):
        if not self.use_compiled():
            return self.eager(*args, **kwargs)
        try:
            return self._unet(*args, **kwargs) if self.unet else self._plain(*args, **kwargs)
        except Exception as exc:
            if getattr(_local, "forced", False):
                raise
            self.fast.fail(exc)
            return self.eager(*args, **kwargs)

    def _plain(self, sample, *args, **kwargs):
        n = sample.shape[0]
        sample = _pad(sample, n, bucket(n)).contiguous(memory_format=torch.channels_last)
        _step()
        return self.compiled(sample, *args, **kwargs)[:n].clone()

    def _unet(self, sample, timestep, encoder_hidden_states=None, *args, **kwargs):
        return_dict = kwargs.pop("return_dict", True)
        # None-valued keywords (timestep_cond, cross_attention_kwargs, … as pipelines pass
        # them) are the defaults: dropped, so every caller presents one call signature
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        n = sample.shape[0]
        to = bucket(n)
        dtype = self.module.dtype
        t = torch.as_tensor(timestep, device=sample.device).to(torch.float32).reshape(-1)
        t = (t.expand(n) if t.numel() == 1 else t).contiguous()
        if encoder_hidden_states is not None:
            encoder_hidden_states = encoder_hidden_states.to(dtype).contiguous()
        padded = _pad((sample.to(dtype), t, encoder_hidden_states, args, kwargs), n, to)
        p_sample, p_t, p_ehs, p_args, p_kwargs = padded
        # after padding: torch.cat would hand back the default layout (a stride guard miss)
        p_sample = p_sample.contiguous(memory_format=torch.channels_last)
        _step()
        out = self.compiled(p_sample, p_t, p_ehs, *p_args, return_dict=False, **p_kwargs)[0]
        out = out[:n].clone()  # a CUDA-graph output is overwritten by the next replay
        if return_dict:
            from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

            return UNet2DConditionOutput(sample=out)
        return (out,)


def _step() -> None:
    mark = getattr(torch.compiler, "cudagraph_mark_step_begin", None)
    if mark is not None:
        mark()


class FastPath:
    """Compiles one loaded pipeline at a time; ``state`` is what Health shows: ``off``,
    ``warming up``, ``on`` or ``failed``."""

    def __init__(
        self,
        cache_dir: Path | None,
        enabled: bool,
        backend: Any = None,
        mode: str | None = None,
        lora_rank: int | None = None,
        lora_slots: int | None = None,
    ) -> None:
        from engine.prompts import lora_slots as slots

        # SFUMATO_COMPILE_BACKEND: "inductor" (default), "eager" (dynamo only), "none" (no
        # torch.compile: the wrapping, bucketing and warm-up alone; bench/gpu_suite --dry-run)
        backend = backend or os.environ.get("SFUMATO_COMPILE_BACKEND", "inductor")
        self.cache_dir, self.enabled, self.backend, self.mode = cache_dir, enabled, backend, mode
        self.state = "off"
        self.message = ""
        #: The LoRA slots' size and why the last LoRA job ran eager, if it did (Health).
        self.lora_note = ""
        self.lora_rank = lora_rank or slots.default_rank()
        self.lora_slots = lora_slots or slots.default_count()
        self.warmup_s: float | None = None
        self._pipe = None
        self._thread: threading.Thread | None = None
        #: Called (from any thread) when ``state`` changes: the engine announces its Health.
        self.on_change = lambda: None
        if cache_dir is not None:
            configure_cache(cache_dir)

    # ------------------------------------------------------------------ lifecycle

    def attach(self, pipe, device: str, background: bool = True) -> None:
        """Prepare ``pipe`` (layout, fused QKV, compiled forwards) and warm it up."""
        if getattr(pipe, "unet", None) is None:  # SD3/Flux transformers: not compiled yet
            return
        if not self.enabled or getattr(pipe.unet, _MARK, False):
            return
        self._pipe = pipe
        mode = self.mode or default_mode(device)
        _inductor_options()
        try:
            unet, decoder = pipe.unet, pipe.vae.decoder
            unet.to(memory_format=torch.channels_last)
            pipe.vae.to(memory_format=torch.channels_last)
            if hasattr(unet, "fuse_qkv_projections"):
                unet.fuse_qkv_projections()
            opts: dict[str, Any] = {"backend": self.backend, "fullgraph": False}
            if self.backend == "inductor":
                opts["mode"] = mode

            def compiled(module):
                forward = type(module).forward.__get__(module)
                return forward if self.backend == "none" else torch.compile(forward, **opts)

            unet.forward = _CompiledForward(self, unet, compiled(unet), unet=True)
            decoder.forward = _CompiledForward(self, decoder, compiled(decoder), unet=False)
            setattr(unet, _MARK, self)
        except Exception as exc:  # noqa: BLE001
            self.fail(exc)
            return
        self.state = "warming up"
        self.message = f"{getattr(self.backend, '__name__', self.backend)}/{mode}"
        self.on_change()
        if background:
            self._thread = threading.Thread(
                target=self._warm_up, args=(pipe,), name="fast-path-warm-up", daemon=True
            )
            self._thread.start()
        else:
            self._warm_up(pipe)

    def detach(self, pipe) -> None:
        """Back to the plain eager modules (the unload path, or the fast path turned off)."""
        from engine.prompts import lora_slots

        if self._thread is not None:
            self._thread.join(timeout=600)
        if getattr(pipe, "unet", None) is None:  # never attached (attach skips transformers)
            return
        lora_slots.uninstall(pipe.unet)
        self.lora_note = ""
        for module in (pipe.unet, pipe.vae.decoder):
            if isinstance(vars(module).get("forward"), _CompiledForward):
                del module.forward
        if getattr(pipe.unet, _MARK, False):
            if hasattr(pipe.unet, "unfuse_qkv_projections"):
                pipe.unet.unfuse_qkv_projections()
            delattr(pipe.unet, _MARK)
        self._pipe = None
        self.state = "off"
        self.on_change()

    def rewarm(self, pipe) -> None:
        """Compile again, in the background, after the UNet's layers changed (the LoRA slots
        went in); jobs run eager until it is warm."""
        if pipe is not self._pipe or self.state not in ("on", "warming up"):
            return
        self.wait()
        self.state = "warming up"
        self.on_change()
        self._thread = threading.Thread(
            target=self._warm_up, args=(pipe,), name="fast-path-warm-up", daemon=True
        )
        self._thread.start()

    def note_lora(self, note: str) -> None:
        if note != self.lora_note:
            self.lora_note = note
            self.on_change()

    @property
    def detail(self) -> str:
        """What Health's ``fast_path_detail`` shows: the mode or the failure, and the LoRA note."""
        return " · ".join(t for t in (self.message, self.lora_note) if t)

    def wait(self, timeout: float | None = None) -> str:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state

    def fail(self, exc: BaseException) -> None:
        log.exception("fast path failed, running eager from now on: %s", exc)
        self.state, self.message = "failed", f"{type(exc).__name__}: {exc}"[:300]
        self.on_change()

    # ------------------------------------------------------------------ warm-up

    def _warm_up(self, pipe) -> None:
        t0 = time.perf_counter()
        try:
            self._load_artifacts(pipe)
            with torch.no_grad(), _forced():  # what the pipelines run under: no guard miss
                for _ in range(2):  # CUDA graphs: the first call warms, the second records
                    warm_inputs(pipe, lambda **kw: (pipe.unet(**kw), None))
                    h, w = _latent_size(pipe)
                    z = torch.randn(
                        1,
                        pipe.vae.config.latent_channels,
                        h,
                        w,
                        device=pipe.unet.device,
                        dtype=pipe.vae.decoder.conv_in.weight.dtype,
                    )
                    pipe.vae.decoder(z)
            if pipe.unet.device.type == "cuda":
                torch.cuda.synchronize()
            self._save_artifacts(pipe)
        except Exception as exc:  # noqa: BLE001
            self.fail(exc)
            return
        self.warmup_s = time.perf_counter() - t0
        # dynamo's graphs and caches live as long as the model: ~250 000 objects on the CPU,
        # an 85-130 ms full pass each time the collector would walk them (engine/gc_pauses.py)
        gc_pauses.settle()
        self.state = "on"
        self.on_change()
        log.info("fast path warm in %.1f s (%s)", self.warmup_s, self.message)

    def _artifact_path(self, pipe) -> Path | None:
        if self.cache_dir is None:
            return None
        key = (
            f"{type(pipe.unet).__name__}|{dict(pipe.unet.config)}|{pipe.unet.dtype}|"
            f"{pipe.unet.device.type}|{self.backend}|{self.mode}|{torch.__version__}"
        )
        return self.cache_dir / f"mega-{hashlib.sha256(key.encode()).hexdigest()[:20]}.bin"

    def _load_artifacts(self, pipe) -> None:
        path = self._artifact_path(pipe)
        load = getattr(torch.compiler, "load_cache_artifacts", None)
        if path is not None and load is not None and path.is_file():
            try:
                load(path.read_bytes())
                log.info("compile cache loaded from %s", path)
            except Exception as exc:  # noqa: BLE001 - a stale cache only costs a compile
                log.warning("compile cache %s not usable: %s", path, exc)

    def _save_artifacts(self, pipe) -> None:
        path = self._artifact_path(pipe)
        save = getattr(torch.compiler, "save_cache_artifacts", None)
        if path is None or save is None:
            return
        try:
            saved = save()
            if saved is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(saved[0])
                tmp.replace(path)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not save the compile cache: %s", exc)


def _latent_size(pipe) -> tuple[int, int]:
    s = pipe.unet.config.sample_size
    return (s, s) if isinstance(s, int) else tuple(s)


def warm_inputs(pipe, call, batch: int = 2) -> Any:
    """Call ``call(**unet_kwargs)`` with random UNet inputs of the model's default size and
    CFG batch (2): what the first job will pass."""
    unet = pipe.unet
    cfg = unet.config
    h, w = _latent_size(pipe)
    dev, dtype = unet.device, unet.dtype
    kwargs: dict[str, Any] = {
        "sample": torch.randn(batch, cfg.in_channels, h, w, device=dev, dtype=dtype),
        "timestep": torch.full((batch,), 500.0, device=dev),
        "encoder_hidden_states": torch.randn(
            batch, 77, cfg.cross_attention_dim, device=dev, dtype=dtype
        ),
    }
    if cfg.addition_embed_type == "text_time":  # SDXL: pooled text embeds and size ids
        n_time = 6 * cfg.addition_time_embed_dim
        kwargs["added_cond_kwargs"] = {
            "text_embeds": torch.randn(
                batch, cfg.projection_class_embeddings_input_dim - n_time, device=dev, dtype=dtype
            ),
            "time_ids": torch.randn(batch, 6, device=dev, dtype=dtype),
        }
    return call(**kwargs)


def configure_cache(cache_dir: Path) -> None:
    """Inductor's FX graph cache and Triton's kernels under ``cache_dir`` (the data folder's),
    unless the environment already names other folders."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir / "inductor"))
    os.environ.setdefault("TRITON_CACHE_DIR", str(cache_dir / "triton"))
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")


def _inductor_options() -> None:
    import torch._dynamo
    import torch._inductor.config as inductor

    inductor.conv_1x1_as_mm = True
    inductor.coordinate_descent_tuning = True
    inductor.epilogue_fusion = False
    inductor.fx_graph_cache = True
    # No "duck sizing": a square size's recompile must not tie height to width, or the first
    # non-square size recompiles again.
    import torch.fx.experimental._config as fx_config

    fx_config.use_duck_shape = False
    # One UNet graph per (bucket, dtype) plus the dynamic-size one: well under this.
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 32)
