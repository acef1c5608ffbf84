"""Write a tiny SD3 or Flux diffusers folder as the single files people download, for tests.

The inverse of the single-file conversion (diffusers' ``convert_sd3_transformer_checkpoint_to_
diffusers`` and engine/models/flow_keys.py's Flux mapping), so a tiny random pipeline of
:mod:`tests.support.tiny_flow` is saved in the original key layouts and loaded back through
``engine.models.flow_single_file``, exercising the real key conversion:

- SD3/SD3.5 as Stability ships it: one file with ``model.diffusion_model.joint_blocks…``, the
  VAE under ``first_stage_model.`` and, as in ``sd3_medium_incl_clips_t5xxlfp8``, the text
  encoders under ``text_encoders.clip_l|clip_g|t5xxl.transformer.``.
- Flux.1 as Black Forest Labs and ComfyUI users keep it: ``flux1-dev.safetensors`` with bare
  ``double_blocks…`` keys (no VAE, no text encoders), and beside it ``ae.safetensors`` (original
  autoencoder keys), ``clip_l.safetensors`` and ``t5xxl_fp16.safetensors`` (transformers keys).

Tiny sizes are not the published ones, so each export carries its diffusers configs beside the
checkpoint as ``<stem>.config/`` (what a user does for an unusual fine-tune), tokenizers
included; the T5 tokenizer is written as ``t5_tokenizer.json`` beside the checkpoint, the file
a user adds (docs/flow-models.md).

    python -m tests.support.flow_export --arch sd3|flux --out DIR [--fp8]
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from tests.support.ldm_export import copy_configs, vae_to_ldm

SD3_TEXT = {"text_encoder": "clip_l", "text_encoder_2": "clip_g", "text_encoder_3": "t5xxl"}


def _swap(w: torch.Tensor) -> torch.Tensor:
    """(scale, shift) <-> (shift, scale): its own inverse."""
    a, b = w.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def _cat(state: Mapping[str, torch.Tensor], *keys: str) -> torch.Tensor:
    return torch.cat([state[k] for k in keys], dim=0)


def sd3_transformer_to_original(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers ``SD3Transformer2DModel`` keys -> SD3's ``model.diffusion_model.…`` keys."""
    s = dict(state)
    out: dict[str, torch.Tensor] = {
        "pos_embed": s.pop("pos_embed.pos_embed"),
        "x_embedder.proj.weight": s.pop("pos_embed.proj.weight"),
        "x_embedder.proj.bias": s.pop("pos_embed.proj.bias"),
        "context_embedder.weight": s.pop("context_embedder.weight"),
        "context_embedder.bias": s.pop("context_embedder.bias"),
        "final_layer.linear.weight": s.pop("proj_out.weight"),
        "final_layer.linear.bias": s.pop("proj_out.bias"),
        "final_layer.adaLN_modulation.1.weight": _swap(s.pop("norm_out.linear.weight")),
        "final_layer.adaLN_modulation.1.bias": _swap(s.pop("norm_out.linear.bias")),
    }
    for d, o in (("timestep_embedder", "t_embedder"), ("text_embedder", "y_embedder")):
        for i, j in ((1, 0), (2, 2)):
            for t in ("weight", "bias"):
                out[f"{o}.mlp.{j}.{t}"] = s.pop(f"time_text_embed.{d}.linear_{i}.{t}")
    blocks = sorted({int(k.split(".")[1]) for k in s if k.startswith("transformer_blocks.")})
    last = blocks[-1]
    for i in blocks:
        b, o = f"transformer_blocks.{i}.", f"joint_blocks.{i}."
        for t in ("weight", "bias"):
            out[f"{o}x_block.attn.qkv.{t}"] = _cat(s, *(f"{b}attn.to_{x}.{t}" for x in "qkv"))
            out[f"{o}context_block.attn.qkv.{t}"] = _cat(
                s, *(f"{b}attn.add_{x}_proj.{t}" for x in "qkv")
            )
            out[f"{o}x_block.attn.proj.{t}"] = s[f"{b}attn.to_out.0.{t}"]
            out[f"{o}x_block.adaLN_modulation.1.{t}"] = s[f"{b}norm1.linear.{t}"]
            ctx = s[f"{b}norm1_context.linear.{t}"]
            out[f"{o}context_block.adaLN_modulation.1.{t}"] = _swap(ctx) if i == last else ctx
            out[f"{o}x_block.mlp.fc1.{t}"] = s[f"{b}ff.net.0.proj.{t}"]
            out[f"{o}x_block.mlp.fc2.{t}"] = s[f"{b}ff.net.2.{t}"]
            if i != last:
                out[f"{o}context_block.attn.proj.{t}"] = s[f"{b}attn.to_add_out.{t}"]
                out[f"{o}context_block.mlp.fc1.{t}"] = s[f"{b}ff_context.net.0.proj.{t}"]
                out[f"{o}context_block.mlp.fc2.{t}"] = s[f"{b}ff_context.net.2.{t}"]
            if f"{b}attn2.to_q.{t}" in s:  # SD3.5-medium's dual attention
                out[f"{o}x_block.attn2.qkv.{t}"] = _cat(s, *(f"{b}attn2.to_{x}.{t}" for x in "qkv"))
                out[f"{o}x_block.attn2.proj.{t}"] = s[f"{b}attn2.to_out.0.{t}"]
        for d, o2 in (
            ("norm_q", "x_block.attn.ln_q"),
            ("norm_k", "x_block.attn.ln_k"),
            ("norm_added_q", "context_block.attn.ln_q"),
            ("norm_added_k", "context_block.attn.ln_k"),
        ):
            if f"{b}attn.{d}.weight" in s:  # SD3.5's qk-norm
                out[f"{o}{o2}.weight"] = s[f"{b}attn.{d}.weight"]
        for d in ("q", "k"):
            if f"{b}attn2.norm_{d}.weight" in s:
                out[f"{o}x_block.attn2.ln_{d}.weight"] = s[f"{b}attn2.norm_{d}.weight"]
    return {"model.diffusion_model." + k: v for k, v in out.items()}


def flux_transformer_to_original(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers ``FluxTransformer2DModel`` keys -> BFL's bare ``double_blocks…`` keys."""
    s = dict(state)
    out: dict[str, torch.Tensor] = {
        "txt_in.weight": s["context_embedder.weight"],
        "txt_in.bias": s["context_embedder.bias"],
        "img_in.weight": s["x_embedder.weight"],
        "img_in.bias": s["x_embedder.bias"],
        "final_layer.linear.weight": s["proj_out.weight"],
        "final_layer.linear.bias": s["proj_out.bias"],
        "final_layer.adaLN_modulation.1.weight": _swap(s["norm_out.linear.weight"]),
        "final_layer.adaLN_modulation.1.bias": _swap(s["norm_out.linear.bias"]),
    }
    for d, o in (
        ("timestep_embedder", "time_in"),
        ("text_embedder", "vector_in"),
        ("guidance_embedder", "guidance_in"),
    ):
        for i, j in ((1, "in_layer"), (2, "out_layer")):
            for t in ("weight", "bias"):
                key = f"time_text_embed.{d}.linear_{i}.{t}"
                if key in s:
                    out[f"{o}.{j}.{t}"] = s[key]
    doubles = sorted({int(k.split(".")[1]) for k in s if k.startswith("transformer_blocks.")})
    for i in doubles:
        b, o = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        for t in ("weight", "bias"):
            out[f"{o}img_mod.lin.{t}"] = s[f"{b}norm1.linear.{t}"]
            out[f"{o}txt_mod.lin.{t}"] = s[f"{b}norm1_context.linear.{t}"]
            out[f"{o}img_attn.qkv.{t}"] = _cat(s, *(f"{b}attn.to_{x}.{t}" for x in "qkv"))
            out[f"{o}txt_attn.qkv.{t}"] = _cat(s, *(f"{b}attn.add_{x}_proj.{t}" for x in "qkv"))
            out[f"{o}img_attn.proj.{t}"] = s[f"{b}attn.to_out.0.{t}"]
            out[f"{o}txt_attn.proj.{t}"] = s[f"{b}attn.to_add_out.{t}"]
            out[f"{o}img_mlp.0.{t}"] = s[f"{b}ff.net.0.proj.{t}"]
            out[f"{o}img_mlp.2.{t}"] = s[f"{b}ff.net.2.{t}"]
            out[f"{o}txt_mlp.0.{t}"] = s[f"{b}ff_context.net.0.proj.{t}"]
            out[f"{o}txt_mlp.2.{t}"] = s[f"{b}ff_context.net.2.{t}"]
        out[f"{o}img_attn.norm.query_norm.scale"] = s[f"{b}attn.norm_q.weight"]
        out[f"{o}img_attn.norm.key_norm.scale"] = s[f"{b}attn.norm_k.weight"]
        out[f"{o}txt_attn.norm.query_norm.scale"] = s[f"{b}attn.norm_added_q.weight"]
        out[f"{o}txt_attn.norm.key_norm.scale"] = s[f"{b}attn.norm_added_k.weight"]
    singles = sorted(
        {int(k.split(".")[1]) for k in s if k.startswith("single_transformer_blocks.")}
    )
    for i in singles:
        b, o = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        for t in ("weight", "bias"):
            out[f"{o}modulation.lin.{t}"] = s[f"{b}norm.linear.{t}"]
            out[f"{o}linear1.{t}"] = _cat(
                s, f"{b}attn.to_q.{t}", f"{b}attn.to_k.{t}", f"{b}attn.to_v.{t}", f"{b}proj_mlp.{t}"
            )
            out[f"{o}linear2.{t}"] = s[f"{b}proj_out.{t}"]
        out[f"{o}norm.query_norm.scale"] = s[f"{b}attn.norm_q.weight"]
        out[f"{o}norm.key_norm.scale"] = s[f"{b}attn.norm_k.weight"]
    return out


def _text(state: Mapping[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """transformers text-encoder keys (CLIP under ``text_model.``, as the released files)."""
    out = {}
    for k, v in state.items():
        if k.endswith("position_ids") or k == "encoder.embed_tokens.weight":
            continue  # T5's input embedding is ``shared.weight`` in the released files
        if k.startswith(("embeddings.", "encoder.layers.", "final_layer_norm.")):
            k = "text_model." + k
        out[prefix + k] = v
    return out


def _save(state: Mapping[str, torch.Tensor], path: Path, dtype: torch.dtype | None) -> Path:
    from safetensors.torch import save_file

    def cast(v: torch.Tensor) -> torch.Tensor:
        v = v.detach()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        return v.contiguous()

    save_file({k: cast(v) for k, v in state.items()}, str(path))
    return path


def _sidecar(src: Path, checkpoint: Path, t5_tokenizer: str) -> None:
    """``<stem>.config/`` (the tiny sizes' configs and CLIP tokenizers) and
    ``t5_tokenizer.json`` beside ``checkpoint``."""
    config = checkpoint.with_name(checkpoint.stem + ".config")
    copy_configs(src, config)
    shutil.rmtree(config / t5_tokenizer)
    shutil.copy2(src / t5_tokenizer / "tokenizer.json", checkpoint.parent / "t5_tokenizer.json")


def export_sd3(
    src: Path,
    out: Path,
    *,
    text_encoders: tuple[str, ...] = ("clip_l", "clip_g", "t5xxl"),
    dtype: torch.dtype | None = None,
    name: str = "sd3-tiny",
) -> Path:
    """``src`` (a tiny SD3 diffusers folder) as one SD3 file in ``out`` with the text encoders
    named in ``text_encoders`` (the others left out, as in ``sd3_medium.safetensors``)."""
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(src, local_files_only=True)
    state = sd3_transformer_to_original(pipe.transformer.state_dict())
    state.update(vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config))
    for attr, short in SD3_TEXT.items():
        if short in text_encoders:
            state.update(
                _text(getattr(pipe, attr).state_dict(), f"text_encoders.{short}.transformer.")
            )
    out.mkdir(parents=True, exist_ok=True)
    path = _save(state, out / f"{name}.safetensors", dtype)
    _sidecar(Path(src), path, "tokenizer_3")
    return path


def flux_ae_to_original(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict:
    """diffusers ``AutoencoderKL`` keys -> ``ae.safetensors``'s bare ``encoder.…/decoder.…``."""
    return {k.removeprefix("first_stage_model."): v for k, v in vae_to_ldm(state, config).items()}


def export_flux(
    src: Path,
    out: Path,
    *,
    dtype: torch.dtype | None = None,
    parts: tuple[str, ...] = ("ae", "clip_l", "t5xxl"),
    name: str = "flux1-tiny",
) -> Path:
    """``src`` (a tiny Flux diffusers folder) as ``<name>.safetensors`` (transformer only) and
    the separate ``ae``/``clip_l``/``t5xxl_fp16`` files named in ``parts``, in ``out``."""
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(src, local_files_only=True)
    out.mkdir(parents=True, exist_ok=True)
    path = _save(
        flux_transformer_to_original(pipe.transformer.state_dict()),
        out / f"{name}.safetensors",
        dtype,
    )
    if "ae" in parts:
        # as released: the autoencoder and CLIP-L in 16/32 bits even beside fp8 transformers
        _save(
            flux_ae_to_original(pipe.vae.state_dict(), pipe.vae.config),
            out / "ae.safetensors",
            None,
        )
    if "clip_l" in parts:
        _save(_text(pipe.text_encoder.state_dict()), out / "clip_l.safetensors", None)
    if "t5xxl" in parts:
        t5 = (
            "t5xxl_fp8_e4m3fn.safetensors"
            if dtype == torch.float8_e4m3fn
            else "t5xxl_fp16.safetensors"
        )
        _save(_text(pipe.text_encoder_2.state_dict()), out / t5, dtype)
    _sidecar(Path(src), path, "tokenizer_2")
    return path


def export_flux_all_in_one(src: Path, out: Path, *, name: str = "flux1-tiny-aio") -> Path:
    """``src`` as ComfyUI saves a whole Flux checkpoint: the transformer under
    ``model.diffusion_model.``, the autoencoder under ``vae.``, the text encoders under
    ``text_encoders.clip_l|t5xxl.transformer.``, all in one file."""
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(src, local_files_only=True)
    state = {
        "model.diffusion_model." + k: v
        for k, v in flux_transformer_to_original(pipe.transformer.state_dict()).items()
    }
    state.update(
        {
            "vae." + k: v
            for k, v in flux_ae_to_original(pipe.vae.state_dict(), pipe.vae.config).items()
        }
    )
    state.update(_text(pipe.text_encoder.state_dict(), "text_encoders.clip_l.transformer."))
    state.update(_text(pipe.text_encoder_2.state_dict(), "text_encoders.t5xxl.transformer."))
    out.mkdir(parents=True, exist_ok=True)
    path = _save(state, out / f"{name}.safetensors", None)
    _sidecar(Path(src), path, "tokenizer_2")
    return path


def main(argv: list[str] | None = None) -> None:
    from tests.support.tiny_flow import build_tiny_flow

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=("sd3", "flux"), required=True)
    parser.add_argument("--out", type=Path, required=True, help="the folder to write into")
    parser.add_argument("--fp8", action="store_true", help="float8_e4m3fn weights")
    args = parser.parse_args(argv)
    dtype = torch.float8_e4m3fn if args.fp8 else None
    src = args.out / f".tiny-{args.arch}-diffusers"
    build_tiny_flow(args.arch, src)
    path = (export_sd3 if args.arch == "sd3" else export_flux)(src, args.out, dtype=dtype)
    shutil.rmtree(src)
    print(json.dumps({"checkpoint": str(path)}))


if __name__ == "__main__":
    main()
