"""LoRAs and textual-inversion embeddings for a pipeline, written as real users' files.

Random low-rank weights (no training), in both layouts people download: kohya/A1111
(``lora_unet_…``/``lora_te_…`` with ``lora_down``/``lora_up``/``alpha``) and diffusers/PEFT
(``unet.…lora_A.weight``), and A1111's ``emb_params`` embeddings in .safetensors.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
TE_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")


def _targets(module: torch.nn.Module, suffixes) -> list[tuple[str, torch.nn.Linear]]:
    return [
        (n, m)
        for n, m in module.named_modules()
        if isinstance(m, torch.nn.Linear) and n.endswith(suffixes)
    ]


def _pair(layer: torch.nn.Linear, rank: int, scale: float, g: torch.Generator):
    down = torch.randn(rank, layer.in_features, generator=g) * scale
    up = torch.randn(layer.out_features, rank, generator=g) * scale
    return down, up


def write_kohya_lora(
    pipe, path: Path, seed: int = 0, rank: int = 4, scale: float = 0.3, alpha: float = 2.0
) -> Path:
    """kohya-ss / A1111 layout: module paths with '_' for '.', lora_down/lora_up/alpha."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for prefix, module, suffixes in (
        ("lora_unet", pipe.unet, UNET_TARGETS),
        ("lora_te", pipe.text_encoder, TE_TARGETS),
    ):
        for name, layer in _targets(module, suffixes):
            key = f"{prefix}_{name.replace('.', '_')}"
            down, up = _pair(layer, rank, scale, g)
            state[f"{key}.lora_down.weight"] = down.contiguous()
            state[f"{key}.lora_up.weight"] = up.contiguous()
            state[f"{key}.alpha"] = torch.tensor(alpha)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"ss_network_module": "networks.lora"})
    return path


def write_peft_lora(
    pipe,
    path: Path,
    seed: int = 1,
    rank: int = 4,
    scale: float = 0.3,
    unet_targets: tuple[str, ...] = UNET_TARGETS,
) -> Path:
    """diffusers/PEFT layout (what ``save_lora_weights`` writes): unet.<path>.lora_A.weight.
    ``unet_targets``: the endings of the UNet's Linear layers it changes."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for prefix, module, suffixes in (
        ("unet", pipe.unet, unet_targets),
        ("text_encoder", pipe.text_encoder, TE_TARGETS),
    ):
        for name, layer in _targets(module, suffixes):
            down, up = _pair(layer, rank, scale, g)
            state[f"{prefix}.{name}.lora_A.weight"] = down.contiguous()
            state[f"{prefix}.{name}.lora_B.weight"] = up.contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


def write_embedding(pipe, path: Path, vectors: int = 2, seed: int = 2, scale: float = 1.0) -> Path:
    """A1111's textual inversion in .safetensors: one tensor 'emb_params' (vectors, width)."""
    g = torch.Generator().manual_seed(seed)
    width = pipe.text_encoder.get_input_embeddings().weight.shape[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"emb_params": torch.randn(vectors, width, generator=g) * scale}, str(path))
    return path
