"""A recipe from a ComfyUI PNG: its ``prompt`` text chunk, the *API graph* ComfyUI ran.

The graph is ``{node id: {"class_type": …, "inputs": {name: value or [source id, output]}}}``.
From the sampler node (``KSampler`` or ``KSamplerAdvanced``) we follow its links: ``positive``
and ``negative`` through conditioning nodes to a ``CLIPTextEncode``'s text, ``latent_image`` to
an ``EmptyLatentImage``'s size and batch, ``model`` through LoRA and model-patch nodes to the
checkpoint loader. ComfyUI's sampler and scheduler names map to Sfumato's (A1111's) below;
a name without a match is kept as written, and the app flags it at drop time (a sampler Sfumato
does not have). The ``workflow`` chunk (the editor's layout) is not read: it holds the same
values without the links resolved.

Pure functions on dicts, no Qt, no files: :mod:`app.recipe` reads the chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from engine.a1111 import validate_leniently

#: ComfyUI ``sampler_name`` → Sfumato sampler (A1111's label). ``_gpu`` variants are the same
#: solvers with the noise drawn on the GPU.
SAMPLERS: dict[str, str] = {
    "euler": "Euler",
    "euler_ancestral": "Euler a",
    "heun": "Heun",
    "dpm_2": "DPM2",
    "dpm_2_ancestral": "DPM2 a",
    "lms": "LMS",
    "dpmpp_2s_ancestral": "DPM++ 2S a",
    "dpmpp_sde": "DPM++ SDE",
    "dpmpp_sde_gpu": "DPM++ SDE",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_2m_sde_gpu": "DPM++ 2M SDE",
    "dpmpp_3m_sde": "DPM++ 3M SDE",
    "dpmpp_3m_sde_gpu": "DPM++ 3M SDE",
    "ddim": "DDIM",
    "ddpm": "DDPM",
    "uni_pc": "UniPC",
    "uni_pc_bh2": "UniPC",
    "lcm": "LCM",
    "deis": "DEIS",
}
#: ComfyUI ``scheduler`` → (Sfumato schedule, timestep spacing or None). Names not here
#: (linear_quadratic, kl_optimal, …) read as the sampler's default, with a note.
SCHEDULERS: dict[str, tuple[str, str | None]] = {
    "normal": ("default", None),
    "simple": ("default", None),
    "ddim_uniform": ("default", None),
    "karras": ("karras", None),
    "exponential": ("exponential", None),
    "beta": ("beta", None),
    "sgm_uniform": ("default", "trailing"),
}
SAMPLER_NODES = ("KSampler", "KSamplerAdvanced")
_TEXT_KEYS = ("text", "text_g", "string", "value", "prompt")
_CONDITIONING_KEYS = (
    "conditioning",
    "conditioning_1",
    "conditioning_to",
    "positive",
    "negative",
    "cond",
)
_LATENT_SOURCES = ("EmptyLatentImage", "EmptySD3LatentImage", "EmptyHunyuanLatentVideo")


class ComfyGraphError(ValueError):
    """The chunk is not a graph we can read; the message says why."""


@dataclass
class ComfyRecipe:
    params: Any  # GenerateParams
    fields: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    not_restored: list[str] = field(default_factory=list)


def _link(value: object) -> str | None:
    """The source node id of a link input (``["4", 0]``), else None."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
        return str(value[0])
    return None


class _Graph:
    def __init__(self, graph: dict[str, Any]) -> None:
        self.nodes = {str(k): v for k, v in graph.items() if isinstance(v, dict)}

    def node(self, node_id: str | None) -> dict[str, Any] | None:
        return self.nodes.get(node_id) if node_id is not None else None

    def inputs(self, node: dict[str, Any]) -> dict[str, Any]:
        inputs = node.get("inputs")
        return inputs if isinstance(inputs, dict) else {}

    def value(self, node: dict[str, Any], *names: str, depth: int = 0) -> object:
        """A literal input, following a link to a primitive node ("seed" widget turned into an
        input)."""
        inputs = self.inputs(node)
        for name in names:
            if name not in inputs:
                continue
            v = inputs[name]
            source = self.node(_link(v))
            if source is None:
                return v
            if depth < 8:
                return self.value(
                    source,
                    *names,
                    "value",
                    "seed",
                    "int",
                    "float",
                    "string",
                    "text",
                    depth=depth + 1,
                )
        return None

    def upstream(
        self,
        node: dict[str, Any],
        keys: tuple[str, ...],
        want: tuple[str, ...],
        seen: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any] | None:
        """The first node of a class in ``want`` reached through inputs named ``keys``."""
        for _ in range(32):
            if str(node.get("class_type", "")).startswith(want):
                return node
            if seen is not None:
                seen.append(node)
            nxt = None
            for key in keys:
                nxt = self.node(_link(self.inputs(node).get(key)))
                if nxt is not None:
                    break
            if nxt is None:
                return None
            node = nxt
        return None


def _text(g: _Graph, node: dict[str, Any] | None) -> str | None:
    if node is None:
        return None
    value = g.value(node, *_TEXT_KEYS)
    return value if isinstance(value, str) else None


def _pick_sampler(g: _Graph) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    samplers = [n for n in g.nodes.values() if n.get("class_type") in SAMPLER_NODES]
    if not samplers:
        others = sorted(
            {
                str(n.get("class_type"))
                for n in g.nodes.values()
                if "Sampler" in str(n.get("class_type", ""))
            }
        )
        hint = f" (it samples with {', '.join(others)})" if others else ""
        raise ComfyGraphError(f"its ComfyUI graph has no KSampler node{hint}")

    def first_pass(n: dict[str, Any]) -> bool:
        src = g.node(_link(g.inputs(n).get("latent_image")))
        return src is not None and str(src.get("class_type", "")).startswith(_LATENT_SOURCES)

    samplers.sort(key=lambda n: not first_pass(n))  # the pass that starts from noise first
    return samplers[0], samplers[1:]


def parse_graph(graph: object) -> ComfyRecipe:
    """The recipe of a ComfyUI API graph; raises :class:`ComfyGraphError`."""
    if not isinstance(graph, dict) or not graph:
        raise ComfyGraphError("its ComfyUI 'prompt' chunk is not a graph")
    g = _Graph(graph)
    ks, later = _pick_sampler(g)
    data: dict[str, Any] = {}
    notes: list[str] = []
    not_restored: list[str] = []
    advanced = ks.get("class_type") == "KSamplerAdvanced"
    for name, key in (
        ("seed", "noise_seed" if advanced else "seed"),
        ("steps", "steps"),
        ("cfg_scale", "cfg"),
    ):
        value = g.value(ks, key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            data[name] = int(value) if name != "cfg_scale" else float(value)
    sampler = g.value(ks, "sampler_name")
    if isinstance(sampler, str):
        data["sampler"] = SAMPLERS.get(sampler, sampler)
        if sampler == "uni_pc_bh2":
            notes.append("ComfyUI's uni_pc_bh2 reads as UniPC (Sfumato's UniPC uses bh1).")
    scheduler = g.value(ks, "scheduler")
    if isinstance(scheduler, str):
        if scheduler in SCHEDULERS:
            data["schedule"], spacing = SCHEDULERS[scheduler]
            if spacing:
                data["timestep_spacing"] = spacing
        else:
            notes.append(
                f"ComfyUI's {scheduler!r} scheduler is not one Sfumato has; the "
                "sampler's default schedule is used."
            )
    denoise = g.value(ks, "denoise")
    if isinstance(denoise, int | float) and denoise < 1:
        not_restored.append(f"denoise {denoise:g} (img2img)")
    if advanced and (g.value(ks, "start_at_step") or 0) > 0:
        not_restored.append("start_at_step")
    for name, key in (("prompt", "positive"), ("negative_prompt", "negative")):
        start = g.node(_link(g.inputs(ks).get(key)))
        if start is not None:
            text = _text(g, g.upstream(start, _CONDITIONING_KEYS, ("CLIPTextEncode",)))
            if text is not None:
                data[name] = text
    latent = g.node(_link(g.inputs(ks).get("latent_image")))
    if latent is not None and str(latent.get("class_type", "")).startswith(_LATENT_SOURCES):
        for name in ("width", "height", "batch_size"):
            value = g.value(latent, name)
            if isinstance(value, int):
                data[name] = value
    elif latent is not None:
        not_restored.append(f"the starting latent ({latent.get('class_type')})")
    model_start = g.node(_link(g.inputs(ks).get("model")))
    if model_start is not None:
        path: list[dict[str, Any]] = []
        loader = g.upstream(
            model_start,
            ("model", "unet"),
            ("CheckpointLoader", "UNETLoader", "UnetLoader"),
            seen=path,
        )
        ckpt = g.value(loader, "ckpt_name", "unet_name") if loader is not None else None
        if isinstance(ckpt, str):
            data["model"] = PurePath(ckpt.replace("\\", "/")).stem
        for node in path:
            kind = str(node.get("class_type", ""))
            if kind.startswith("Lora"):
                lora = g.value(node, "lora_name")
                not_restored.append(f"LoRA {PurePath(str(lora)).stem}" if lora else kind)
    if later:
        not_restored.append(
            f"{len(later)} more sampling pass{'es' if len(later) > 1 else ''} "
            "(hires fix or refiner)"
        )
    if not data:
        raise ComfyGraphError("its ComfyUI graph names no prompt, size or sampler Sfumato reads")
    params, adjusted = validate_leniently(data)
    return ComfyRecipe(params, set(data), notes + adjusted, not_restored)
