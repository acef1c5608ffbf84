"""LoRAs named in the prompt (``<lora:name:w>``, ``<lyco:…>``): found, checked, applied, removed.

Files are ``.safetensors`` in a models folder's ``loras/`` (or A1111's ``Lora/``), in either the
kohya/A1111 key layout (``lora_unet_…``, ``lora_te_…``, ``lora_te1_``/``lora_te2_`` for SDXL) or
the diffusers/PEFT one (``unet.…lora_A.weight``). Pickles (``.pt``, ``.ckpt``) are refused like
every pickle in Sfumato. diffusers reads both layouts (``load_lora_weights``, which converts
kohya keys) into PEFT adapters; ``set_adapters`` stacks them with their weights and
``unload_lora_weights`` puts the original layers back, so the next job sees the base model bit
for bit.

Which base a LoRA fits is read from its header alone: the width of the text conditioning its
cross-attention ``to_k``/``to_v`` layers take (768 SD 1.x, 1024 SD 2.x, 2048 SDXL).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.errors import EngineError

LORA_FOLDERS = ("loras", "Lora", "LoRA", "lora")
#: The width of the text conditioning → the family that has it (128: the built-in model's).
BASES = {128: "Sfumato tiny", 768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL"}


def base_label(context_dim: int) -> str:
    if not context_dim:
        return "an unknown base"
    return BASES.get(context_dim, f"models with {context_dim}-wide text conditioning")


@dataclass(frozen=True)
class LoraFile:
    name: str
    path: Path
    context_dim: int  # what its cross-attention layers take; 0 if it has none
    format: str  # "kohya" | "diffusers"
    problem: str = ""

    @property
    def base(self) -> str:
        return base_label(self.context_dim)


def read_header(path: Path) -> dict:
    """The JSON header of a .safetensors file (tensor names, dtypes, shapes), without the data."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError("too short to be a .safetensors file")
        (n,) = struct.unpack("<Q", raw)
        if n > 100_000_000:
            raise ValueError("header too large")
        return json.loads(f.read(n))


def describe(path: Path) -> LoraFile:
    name = path.stem
    try:
        header = read_header(path)
    except (OSError, ValueError) as exc:
        return LoraFile(name, path, 0, "", f"{path.name} is not a readable .safetensors ({exc})")
    keys = [k for k in header if k != "__metadata__"]
    kohya = any(k.startswith(("lora_unet_", "lora_te")) for k in keys)
    if not kohya and not any("lora_A" in k or "lora.down" in k or "lora_down" in k for k in keys):
        return LoraFile(name, path, 0, "", f"{path.name} holds no LoRA weights")
    dim = 0
    for key in keys:
        is_down = "lora_down" in key or "lora_A" in key or "lora.down" in key
        if is_down and ("attn2_to_k" in key or "attn2.to_k" in key) and key.endswith("weight"):
            shape = header[key].get("shape", [])
            if len(shape) >= 2:
                dim = int(shape[1])
                break
    return LoraFile(name, path, dim, "kohya" if kohya else "diffusers")


def lora_dirs(model_folders: Iterable[Path]) -> list[Path]:
    return [f / sub for f in model_folders for sub in LORA_FOLDERS if (f / sub).is_dir()]


def scan(model_folders: Iterable[Path]) -> dict[str, LoraFile]:
    """name → file, first folder wins; pickles listed with the reason they are refused."""
    found: dict[str, LoraFile] = {}
    for folder in lora_dirs(model_folders):
        for path in sorted(folder.rglob("*")):
            suffix = path.suffix.lower()
            if path.stem in found or not path.is_file():
                continue
            if suffix == ".safetensors":
                found[path.stem] = describe(path)
            elif suffix in (".pt", ".ckpt", ".bin", ".pth"):
                found[path.stem] = LoraFile(
                    path.stem,
                    path,
                    0,
                    "",
                    f"{path.name} is a pickle, which Sfumato never "
                    "loads (it can run code); convert it to .safetensors",
                )
    return found


def shorthash(path: Path) -> str:
    """A1111's LoRA hash: SHA-256 of the file after its safetensors header, 12 hex digits."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        f.seek(8 + n)
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def check(tags, available: dict[str, LoraFile], context_dim: int, model_name: str) -> None:
    """Refuse a missing LoRA, a pickle, or one made for another base, naming it."""
    for tag in tags:
        lora = available.get(tag.name)
        if lora is None:
            known = ", ".join(sorted(available)) or "none installed"
            raise EngineError(
                f"LoRA '{tag.name}' ({tag.text}) is not in any loras/ folder (installed: {known}).",
                "params.prompt",
            )
        if lora.problem:
            raise EngineError(f"LoRA '{tag.name}': {lora.problem}", "params.prompt")
        if lora.context_dim and context_dim and lora.context_dim != context_dim:
            raise EngineError(
                f"LoRA '{tag.name}' is made for {lora.base}; {model_name} is "
                f"{base_label(context_dim)}. Choose a LoRA for this model or another model.",
                "params.prompt",
            )


def adapter_name(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def merged_weights(tags) -> dict[str, tuple[float, float]]:
    """name → (text-encoder weight, UNet weight); the same LoRA twice adds up, as A1111 does."""
    merged: dict[str, tuple[float, float]] = {}
    for tag in tags:
        te, unet = merged.get(tag.name, (0.0, 0.0))
        merged[tag.name] = (te + tag.te_weight, unet + tag.unet_weight)
    return merged


def apply(pipe, tags, available: dict[str, LoraFile]) -> list[str]:
    """Load the tags' LoRAs as PEFT adapters and weigh them; returns the adapter names.
    (A UNet the fast path compiled takes its LoRAs through engine/prompts/lora_slots.py.)"""
    names, weights = [], []
    try:
        for name, (te, unet) in merged_weights(tags).items():
            adapter = adapter_name(name)
            try:
                pipe.load_lora_weights(str(available[name].path), adapter_name=adapter)
            except Exception as exc:  # noqa: BLE001 - diffusers raises many kinds on bad files
                raise EngineError(
                    f"LoRA '{name}' could not be loaded: {type(exc).__name__}: {exc}",
                    "params.prompt",
                ) from None
            names.append(adapter)
            weights.append(_component_weights(pipe, te, unet))
        pipe.set_adapters(names, adapter_weights=weights)
    except BaseException:
        remove(pipe)
        raise
    return names


def _component_weights(pipe, te: float, unet: float) -> dict[str, float]:
    out = {"unet": unet, "text_encoder": te}
    if getattr(pipe, "text_encoder_2", None) is not None:
        out["text_encoder_2"] = te
    return out


def remove(pipe) -> None:
    """Take every LoRA layer out: the original modules come back unchanged."""
    pipe.unload_lora_weights()
