"""Random-weight SD3.5-medium and Flux.1-dev pipelines from the shipped configs, for benches.

The component configs are ``resources/configs/sd3`` (``transformer_sd35_medium``) and
``resources/configs/flux`` (``transformer``), the ones single files load with, so a random
pipeline times exactly like the real weights. ``tiny=True`` shrinks every width and depth (the
dry run on the CPU) and keeps the structure (SD3.5-medium's dual attention and qk-norm, Flux's
double and single blocks and guidance embedding).

The weights are made on ``device`` in ``dtype`` (a 12 B-parameter Flux in bfloat16 is made on
an H100 in seconds; on the CPU in float32 it would take minutes and 48 GB) and saved as a
diffusers folder the engine and plain diffusers both load. The T5 tokenizer is the small
unigram one of tests/support/tiny_flow.py (T5's own cannot ship, docs/flow-models.md): it
tokenizes into ids T5-XXL's embedding has, and prompts are padded to the pipelines' lengths
(SD3 256, Flux 512 tokens), so T5's cost is the real one.
"""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "resources" / "configs"
ARCHES = {"sd35": ("sd3", "transformer_sd35_medium"), "flux": ("flux", "transformer")}

#: Overrides for ``tiny=True``: the shapes of tests/support/tiny_flow.py's models.
_TINY_TRANSFORMER = {
    "sd35": {
        "num_layers": 2,
        "attention_head_dim": 8,
        "num_attention_heads": 4,
        "caption_projection_dim": 32,
        "joint_attention_dim": 32,
        "pooled_projection_dim": 64,
        "pos_embed_max_size": 32,
        "sample_size": 32,
        "dual_attention_layers": [0],
    },
    "flux": {
        "num_layers": 1,
        "num_single_layers": 1,
        "attention_head_dim": 16,
        "num_attention_heads": 2,
        "joint_attention_dim": 32,
        "pooled_projection_dim": 32,
        "axes_dims_rope": [4, 6, 6],
    },
}
_TINY_CLIP = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "projection_dim": 32,
}
_TINY_T5 = {
    "d_model": 32,
    "d_ff": 37,
    "d_kv": 8,
    "num_heads": 4,
    "num_layers": 2,
    "relative_attention_num_buckets": 8,
}
_TINY_VAE = {
    "block_out_channels": [32, 64],
    "down_block_types": ["DownEncoderBlock2D"] * 2,
    "up_block_types": ["UpDecoderBlock2D"] * 2,
    "norm_num_groups": 16,
    "layers_per_block": 1,
    "sample_size": 64,
}


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def configs(arch: str, tiny: bool = False) -> dict[str, dict]:
    """Each component's config for ``arch`` ("sd35" or "flux"), shrunk when ``tiny``."""
    folder, transformer = ARCHES[arch]
    root = CONFIGS / folder
    text = {
        "sd35": ("text_encoder", "text_encoder_2", "text_encoder_3"),
        "flux": ("text_encoder", "text_encoder_2"),
    }[arch]
    out = {
        "transformer": _json(root / transformer / "config.json"),
        "vae": _json(root / "vae" / "config.json"),
        "scheduler": _json(root / "scheduler" / "scheduler_config.json"),
    }
    for name in text:
        out[name] = _json(root / name / "config.json")
    if tiny:
        out["transformer"].update(_TINY_TRANSFORMER[arch])
        out["vae"].update(_TINY_VAE)
        for name in text:
            out[name].update(_TINY_T5 if out[name].get("model_type") == "t5" else _TINY_CLIP)
    return out


def build_random_flow(
    arch: str, out: Path, dtype, device: str = "cpu", tiny: bool = False, seed: int = 0
) -> Path:
    """A random ``arch`` pipeline (see the module docstring) saved as a diffusers folder."""
    import diffusers
    import torch
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        T5Config,
        T5EncoderModel,
    )

    from engine.models.flow_single_file import assemble_flow_pipeline
    from tests.support.tiny_flow import t5_tokenizer

    cfg = configs(arch, tiny)
    folder = CONFIGS / ARCHES[arch][0]
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            if arch == "sd35":
                transformer = diffusers.SD3Transformer2DModel.from_config(cfg["transformer"])
            else:
                transformer = diffusers.FluxTransformer2DModel.from_config(cfg["transformer"])
            vae = diffusers.AutoencoderKL.from_config(cfg["vae"])
            clip_cls = CLIPTextModelWithProjection if arch == "sd35" else CLIPTextModel
            text_encoder = clip_cls(CLIPTextConfig(**cfg["text_encoder"]))
            t5_name = "text_encoder_3" if arch == "sd35" else "text_encoder_2"
            t5 = T5EncoderModel(T5Config(**cfg[t5_name]))
            clip_g = (
                CLIPTextModelWithProjection(CLIPTextConfig(**cfg["text_encoder_2"]))
                if arch == "sd35"
                else None
            )
    finally:
        torch.set_default_dtype(previous)
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler.from_config(cfg["scheduler"])
    pipe = assemble_flow_pipeline(
        "sd3" if arch == "sd35" else "flux",
        transformer=transformer,
        scheduler=scheduler,
        vae=vae,
        clip_l=text_encoder,
        clip_g=clip_g,
        t5=t5,
        t5_tokenizer=t5_tokenizer(512),
        tokenizers=folder,
    )
    pipe.save_pretrained(out, safe_serialization=True)
    return Path(out)
