"""LoRAs on the fast path's compiled UNet: resident adapter slots, hotswapped in place.

Loading a LoRA the plain way (``load_lora_weights`` … ``unload_lora_weights``, engine/prompts/
loras.py) wraps the UNet's Linear layers in PEFT layers and unwraps them after the job: a new
module tree each time, so a compiled UNet (engine/fast_path.py) would recompile at every LoRA
change. With the fast path attached, a job's LoRAs go through :class:`JobLoras` instead, built
on diffusers' LoRA hotswapping (``enable_lora_hotswap`` / ``load_lora_adapter(…, hotswap=True)``,
which calls PEFT's ``hotswap_adapter_from_state_dict``):

- The first LoRA job installs :data:`SLOT_NAMES` ``[:count]`` — adapters of rank ``R`` on every
  Linear and 1×1 convolution of the UNet's attention blocks (``proj_in``, ``to_q``/``to_k``/
  ``to_v``/``to_out.0`` of both attentions, the feed-forward, ``proj_out``: what kohya's LoRA
  trains and a superset of what diffusers' training scripts train), all zero and all active;
  their scalings are tensors (``enable_lora_hotswap``), so changing them never recompiles. The
  attention processors switch to unfused q/k/v (a fused ``to_qkv`` would bypass the LoRA layers
  on ``to_q``/``to_k``/``to_v``). The UNet compiles this tree once more, in the background
  (:meth:`engine.fast_path.FastPath.rewarm`); that job runs eager.
- Each LoRA job copies its LoRAs' UNet weights into the slots (one LoRA per slot; a lower rank
  is zero-padded, layers it does not touch are zeroed), sets each slot's per-layer scaling to
  ``weight · alpha / rank`` in place, and zeroes the slots after the job. Same tree, same
  tensors: no recompile, with or without CUDA graphs.
- A job without LoRAs takes the slots out of the tree and fuses q/k/v again
  (:meth:`LoraSlots.set_mode` ``"rest"``): the very module and processor objects of the tree
  the fast path compiled at load, so that graph runs again — no slot cost, no recompile, the
  base image bit for bit. The next LoRA job puts the same slot objects back.
- Text-encoder halves are loaded and removed per job the plain way (the text encoders are not
  compiled; diffusers cannot hotswap them anyway).
- A job whose LoRAs do not fit — more LoRAs than slots, a rank above ``R``, layers outside the
  slots (LoCon's convolutions, ``time_emb_proj`` …), per-layer alphas (diffusers refuses to
  hotswap those), DoRA, LoKr/LoHa, biases — runs eager the plain way on the tree without slots
  and unfused (``"plain"``). The reason is logged and shown in Health's ``fast_path_detail``.

A tree change waits for a warm-up that is tracing the UNet (only a LoRA job right after a model
load, or right after the first LoRA job, ever does).

What it costs: per slot, ``R × (in + out)`` parameters on each target layer (at R = 64: SD 1.5
27 M parameters, 54 MB in float16; SDXL 170 M, 340 MB), and in LoRA jobs the two low-rank
matmuls per layer and slot in every step (a third more linear-layer work at 320 channels for
R = 64, whatever the LoRAs' own rank; bench/lora_slots.py, docs/prompts.md) and unfused q/k/v. ``SFUMATO_LORA_SLOT_RANK`` (default 64) and ``SFUMATO_LORA_SLOTS`` (default 2) set R and
the count.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from engine.errors import EngineError
from engine.prompts import loras

log = logging.getLogger(__name__)

SLOT_NAMES = tuple(f"sfumato_slot{i}" for i in range(8))
_ATTR = "_sfumato_lora_slots"
_PEFT_ATTRS = ("peft_config", "_hf_peft_config_loaded")
#: The layers of an attention block (Transformer2DModel) that the slots hold.
_TARGET_TAILS = (
    ".proj_in",
    ".proj_out",
    ".to_q",
    ".to_k",
    ".to_v",
    ".to_out.0",
    ".ff.net.0.proj",
    ".ff.net.2",
)


def default_rank() -> int:
    return int(os.environ.get("SFUMATO_LORA_SLOT_RANK", "64"))


def default_count() -> int:
    return min(int(os.environ.get("SFUMATO_LORA_SLOTS", "2")), len(SLOT_NAMES))


def _is_target(name: str, module) -> bool:
    import torch

    if ".attentions." not in f".{name}" or not name.endswith(_TARGET_TAILS):
        return False
    if isinstance(module, torch.nn.Linear):
        return True
    return isinstance(module, torch.nn.Conv2d) and tuple(module.kernel_size) == (1, 1)


# --------------------------------------------------------------------------- reading a file


@dataclass
class LoraParts:
    """One LoRA file as diffusers reads it (kohya keys converted), split by component."""

    name: str
    state_dict: dict
    network_alphas: dict | None
    metadata: dict | None
    #: The UNet half in PEFT layout (``<module>.lora_A.weight``), empty if it has none.
    unet: dict = field(default_factory=dict)

    def text_encoders(self) -> list[str]:
        return [
            p
            for p in ("text_encoder", "text_encoder_2")
            if any(k.startswith(p + ".") for k in self.state_dict)
        ]


def read(pipe, lora: loras.LoraFile) -> LoraParts:
    from diffusers.utils import convert_unet_state_dict_to_peft

    try:
        sd, alphas, metadata = type(pipe).lora_state_dict(str(lora.path), return_lora_metadata=True)
    except Exception as exc:  # noqa: BLE001 - diffusers raises many kinds on bad files
        raise EngineError(
            f"LoRA '{lora.name}' could not be loaded: {type(exc).__name__}: {exc}", "params.prompt"
        ) from None
    unet = {k.removeprefix("unet."): v for k, v in sd.items() if k.startswith("unet.")}
    if unet and "lora_A" not in next(iter(unet)):  # what load_lora_adapter does
        unet = convert_unet_state_dict_to_peft(unet)
    return LoraParts(lora.name, sd, alphas, metadata, unet)


# --------------------------------------------------------------------------- the slots


class LoraSlots:
    """The resident adapters on one UNet (see the module docstring)."""

    def __init__(self, unet, rank: int, names: tuple[str, ...]) -> None:
        self.unet, self.rank, self.names = unet, rank, names
        #: module name → (kind: 2 Linear / 4 Conv2d, in, out)
        self.targets: dict[str, tuple[int, int, int]] = {}
        #: The attention processors with fused q/k/v (the fast path's) and without.
        self.fused_procs: dict | None = None
        self.plain_procs: dict | None = None
        #: The slots' PEFT layers by module name, and diffusers' bookkeeping of them.
        self.wrapped: list[tuple[str, object]] = []
        self._peft: dict = {}
        self.config = None
        #: "slots" (LoRA layers in the tree, q/k/v unfused), "plain" (neither: the eager
        #: fallback's tree), "rest" (no LoRA layers, q/k/v fused again: the tree, and so the
        #: graph, the fast path compiled at load).
        self.mode = "slots"
        #: Whether the fast path has compiled the "slots" tree.
        self.compiled = False

    @classmethod
    def of(cls, unet) -> LoraSlots | None:
        return vars(unet).get(_ATTR)

    @classmethod
    def install(cls, unet, rank: int, count: int) -> LoraSlots:
        import torch
        from peft.tuners.tuners_utils import BaseTunerLayer

        self = cls(unet, rank, SLOT_NAMES[:count])
        if getattr(unet, "original_attn_processors", None) is not None:  # the fast path fused
            self.fused_procs = dict(unet.attn_processors)
            self.plain_procs = dict(unet.original_attn_processors)
            unet.set_attn_processor(dict(self.plain_procs))
        zeros = {}
        for name, module in unet.named_modules():
            if not _is_target(name, module):
                continue
            dev, dtype = module.weight.device, module.weight.dtype
            if isinstance(module, torch.nn.Linear):
                a = torch.zeros(rank, module.in_features, device=dev, dtype=dtype)
                b = torch.zeros(module.out_features, rank, device=dev, dtype=dtype)
                self.targets[name] = (2, module.in_features, module.out_features)
            else:
                a = torch.zeros(rank, module.in_channels, 1, 1, device=dev, dtype=dtype)
                b = torch.zeros(module.out_channels, rank, 1, 1, device=dev, dtype=dtype)
                self.targets[name] = (4, module.in_channels, module.out_channels)
            zeros[f"{name}.lora_A.weight"], zeros[f"{name}.lora_B.weight"] = a, b
        # PEFT freezes the base weights; the graph compiled at load guards on requires_grad
        grads = [(p, p.requires_grad) for p in unet.parameters()]
        for slot in self.names:
            # scalings become tensors (filled in place from now on) when the adapter loads
            unet.enable_lora_hotswap(target_rank=rank, check_compiled="ignore")
            unet.load_lora_adapter(dict(zeros), prefix=None, adapter_name=slot)
        for module in unet.modules():
            if isinstance(module, BaseTunerLayer):
                module.set_adapter(list(self.names), inference_mode=True)
        for param, grad in grads:
            param.requires_grad_(grad)
        self.wrapped = [(n, m) for n, m in unet.named_modules() if isinstance(m, BaseTunerLayer)]
        self.config = unet.peft_config[self.names[0]]  # what a LoRA must match to hotswap
        self.clear()
        setattr(unet, _ATTR, self)
        log.info(
            "LoRA slots installed: %d × rank %d on %d layers (%.1f M parameters)",
            len(self.names),
            rank,
            len(self.targets),
            self.parameters() / 1e6,
        )
        return self

    def parameters(self) -> int:
        return len(self.names) * self.rank * sum(i + o for _k, i, o in self.targets.values())

    def _layers(self) -> Iterator[tuple[str, object]]:
        from peft.tuners.lora import LoraLayer

        for name, module in self.unet.named_modules():
            if isinstance(module, LoraLayer):
                yield name, module

    def misfit(self, parts: list[LoraParts]) -> str:
        """Why these LoRAs cannot go into the slots ("" if they can)."""
        from diffusers.utils.peft_utils import get_peft_kwargs
        from peft import LoraConfig
        from peft.utils.hotswap import check_hotswap_configs_compatible

        with_unet = [p for p in parts if p.unet]
        if len(with_unet) > len(self.names):
            return (
                f"{len(with_unet)} LoRAs with UNet weights, the fast path has "
                f"{len(self.names)} slots"
            )
        for p in with_unet:
            for key, value in p.unet.items():
                module, _, tail = key.rpartition(".lora_")
                if "lokr_" in key or "hada_" in key:
                    return f"'{p.name}' is a LoKr/LoHa network (diffusers hotswaps plain LoRA only)"
                if tail not in ("A.weight", "B.weight"):
                    return (
                        f"'{p.name}' has {key.rpartition('.')[2]} weights ({key}), not plain LoRA"
                    )
                if module not in self.targets:
                    return (
                        f"'{p.name}' changes {module}, outside the attention layers the slots hold"
                    )
                if value.ndim != self.targets[module][0]:
                    return f"'{p.name}' has a {value.ndim}-d weight for {module}"
                if tail == "A.weight" and value.shape[0] > self.rank:
                    return (
                        f"'{p.name}' has rank {value.shape[0]} (on {module}); the slots "
                        f"hold rank ≤ {self.rank} (SFUMATO_LORA_SLOT_RANK)"
                    )
            # diffusers builds this config from the file and refuses to hotswap one whose
            # dropout, rsLoRA, DoRA or per-layer alphas differ from the slot's
            try:
                if p.metadata:
                    kwargs = {
                        k.removeprefix("unet."): v
                        for k, v in p.metadata.items()
                        if k.startswith("unet.")
                    } or dict(p.metadata)
                else:
                    ranks = {
                        f"^{k}": v.shape[1]
                        for k, v in p.unet.items()
                        if "lora_B" in k and v.ndim > 1
                    }
                    alphas = {
                        k.removeprefix("unet."): v
                        for k, v in (p.network_alphas or {}).items()
                        if k.startswith("unet.")
                    }
                    kwargs = get_peft_kwargs(ranks, alphas, p.unet, is_unet=True)
                check_hotswap_configs_compatible(self.config, LoraConfig(**kwargs))
            except (ValueError, TypeError) as exc:
                return f"'{p.name}' cannot be hotswapped: {exc}"
        return ""

    def load(self, pipe, items: list[tuple[LoraParts, float]]) -> None:
        """Copy each LoRA's UNet half into a slot, scaled by its weight; zero the other slots."""
        import torch

        items = [(p, w) for p, w in items if p.unet]
        with torch.no_grad():
            for slot, (parts, weight) in zip(self.names, items, strict=False):
                self.unet.load_lora_adapter(
                    parts.state_dict,
                    prefix="unet",
                    network_alphas=parts.network_alphas,
                    metadata=parts.metadata,
                    adapter_name=slot,
                    hotswap=True,
                    _pipeline=pipe,
                )
                touched = {key.rpartition(".lora_")[0] for key in parts.unet}
                for name, layer in self._layers():
                    # the hotswap set alpha/rank on the layers it touched and zeroed the rest
                    if name in touched:
                        layer.scaling[slot].mul_(weight)
                    else:
                        layer.scaling[slot].fill_(0.0)
            for slot in self.names[len(items) :]:
                self._zero(slot)

    def clear(self) -> None:
        """Every slot to zero: the UNet computes the base model's output (plus exact zeros)."""
        import torch

        with torch.no_grad():
            for slot in self.names:
                self._zero(slot)

    def _zero(self, slot: str) -> None:
        for _name, layer in self._layers():
            if slot in layer.lora_A:
                layer.lora_A[slot].weight.zero_()
                layer.lora_B[slot].weight.zero_()
                layer.scaling[slot].fill_(0.0)

    def set_mode(self, mode: str) -> None:
        """Switch the module tree (see :attr:`mode`); the very same module and processor
        objects come back each time, so the graphs compiled for each tree stay valid. Only
        while no warm-up traces the UNet."""
        if mode == self.mode:
            return
        unet = self.unet
        if self.mode == "slots":  # take the LoRA layers out, and diffusers' record of them
            for name, module in self.wrapped:
                parent, _, child = name.rpartition(".")
                setattr(unet.get_submodule(parent), child, module.get_base_layer())
            self._peft = {k: unet.__dict__.pop(k) for k in _PEFT_ATTRS if k in unet.__dict__}
        if mode == "slots":
            for k in _PEFT_ATTRS:  # what a plain load and unload left
                unet.__dict__.pop(k, None)
            unet.__dict__.update(self._peft)
            for name, module in self.wrapped:
                parent, _, child = name.rpartition(".")
                setattr(unet.get_submodule(parent), child, module)
        procs = self.fused_procs if mode == "rest" else self.plain_procs
        if procs is not None:
            unet.set_attn_processor(dict(procs))
        self.mode = mode

    def uninstall(self) -> None:
        """Back to the UNet as the fast path left it (detached, or the slots broke)."""
        self.set_mode("rest")
        vars(self.unet).pop(_ATTR, None)
        for k in _PEFT_ATTRS:
            self.unet.__dict__.pop(k, None)


def uninstall(unet) -> None:
    slots = LoraSlots.of(unet)
    if slots is not None:
        slots.uninstall()


def rest(pipe, fast) -> None:
    """A job without LoRAs: the tree the fast path compiled at load (no LoRA layers, nothing
    to compute for them), unless a warm-up is tracing the UNet now (then the zeroed slots stay
    and the job runs eager anyway)."""
    slots = LoraSlots.of(pipe.unet)
    if slots is not None and slots.mode != "rest" and fast.state != "warming up":
        slots.set_mode("rest")


# --------------------------------------------------------------------------- one job


class JobLoras:
    """One job's LoRAs on a pipeline the fast path compiled: into the slots if they fit,
    else eager the plain way. ``apply()`` before the job, ``remove()`` after it."""

    def __init__(self, fast, pipe, tags, available: dict[str, loras.LoraFile]) -> None:
        self.fast, self.pipe, self.tags, self.available = fast, pipe, tags, available
        self._exit = contextlib.ExitStack()
        self._text_encoders: list[str] = []
        self.eager_reason = ""

    def apply(self) -> None:
        try:
            self._apply()
        except BaseException:
            self._exit.close()  # the slots back in place, nothing left loaded
            raise

    def _apply(self) -> None:
        from engine.fast_path import job_allows

        weights = loras.merged_weights(self.tags)
        parts = [read(self.pipe, self.available[name]) for name in weights]
        for_unet = any(p.unet for p in parts)
        slots = LoraSlots.of(self.pipe.unet)
        if slots is None and for_unet:
            self.fast.wait()  # no layer changes while a warm-up traces the UNet
            slots = LoraSlots.install(self.pipe.unet, self.fast.lora_rank, self.fast.lora_slots)
        reason = slots.misfit(parts) if slots is not None and for_unet else ""
        if not reason:
            try:
                if slots is not None and for_unet:
                    self._switch(slots, "slots")
                    slots.load(self.pipe, [(p, weights[p.name][1]) for p in parts])
                self._load_text_encoders(parts, weights)
            except Exception as exc:  # a hotswap diffusers refused after all
                log.exception("LoRA hotswap failed; the slots are removed")
                self._remove_text_encoders()
                self.fast.wait()
                slots.uninstall()  # a failed hotswap may have deleted a slot: start afresh
                slots = None
                reason = f"the hotswap failed ({type(exc).__name__}: {exc})"
        if reason:
            self.eager_reason = reason
            log.warning("LoRAs %s run eager in this job: %s", ", ".join(weights), reason)
            self.fast.note_lora(f"last LoRA job ran eager: {reason}")
            self._exit.enter_context(job_allows(False))
            if slots is not None:
                self._switch(slots, "plain")
            # PEFT freezes the base weights and unloading leaves them so; compiled graphs
            # guard on requires_grad
            grads = [(p, p.requires_grad) for p in self.pipe.unet.parameters()]
            self._exit.callback(lambda: [p.requires_grad_(g) for p, g in grads])
            loras.apply(self.pipe, self.tags, self.available)
            self._exit.callback(loras.remove, self.pipe)
            return
        if slots is not None and for_unet:
            self.fast.note_lora(f"LoRA slots: {len(slots.names)} × rank {slots.rank}")
            self._exit.callback(slots.clear)
            if not slots.compiled:  # compile the slots' tree in the background; eager till then
                slots.compiled = True
                self.fast.rewarm(self.pipe)
        self._exit.callback(self._remove_text_encoders)

    def _switch(self, slots: LoraSlots, mode: str) -> None:
        if slots.mode != mode:
            self.fast.wait()  # no layer changes while a warm-up traces the UNet
            slots.set_mode(mode)

    def remove(self) -> None:
        self._exit.close()

    def _load_text_encoders(self, parts: list[LoraParts], weights) -> None:
        from diffusers.loaders.lora_base import set_adapters_for_text_encoder

        pipe = self.pipe
        for attr in ("text_encoder", "text_encoder_2"):
            encoder = getattr(pipe, attr, None)
            names = []
            for p in parts:
                if encoder is None or attr not in p.text_encoders():
                    continue
                adapter = loras.adapter_name(p.name)
                type(pipe).load_lora_into_text_encoder(
                    p.state_dict,
                    network_alphas=p.network_alphas,
                    text_encoder=encoder,
                    prefix=attr,
                    lora_scale=pipe.lora_scale,
                    adapter_name=adapter,
                    _pipeline=pipe,
                    metadata=p.metadata,
                )
                names.append((adapter, weights[p.name][0]))
            if names:
                self._text_encoders.append(attr)
                set_adapters_for_text_encoder([n for n, _ in names], encoder, [w for _, w in names])

    def _remove_text_encoders(self) -> None:
        # what unload_lora_weights does to a text encoder: the original layers come back
        from diffusers.loaders.lora_base import _remove_text_encoder_monkey_patch

        for attr in self._text_encoders:
            _remove_text_encoder_monkey_patch(getattr(self.pipe, attr))
        self._text_encoders = []
