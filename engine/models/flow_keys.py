"""Flux.1's original key layout (Black Forest Labs' ``flux1-dev.safetensors``) -> diffusers'.

diffusers has this conversion (``convert_flux_transformer_checkpoint_to_diffusers``), but it
fixes the model's width at Flux.1's 3072 to split the single-stream blocks' fused ``linear1``
(q, k, v and the MLP input in one matrix), so it converts nothing else, not even a test model.
This one reads the width from the diffusers config and is otherwise the same mapping; SD3's
conversion has no such constant and is diffusers' own (engine/models/flow_single_file.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ORIGINAL_PREFIX = "model.diffusion_model."


def _swap(w):
    """BFL's final modulation is (shift, scale); diffusers' AdaLayerNormContinuous wants
    (scale, shift)."""
    import torch

    shift, scale = w.chunk(2, dim=0)
    return torch.cat([scale, shift], dim=0)


def flux_to_diffusers(state: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """The transformer's tensors of ``state`` (bare or under ``model.diffusion_model.``) under
    ``FluxTransformer2DModel``'s names. Tensors of other components are ignored; a missing
    tensor raises ``KeyError`` naming it."""
    s = {k.removeprefix(ORIGINAL_PREFIX): v for k, v in state.items()}
    inner = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    out: dict[str, Any] = {
        "context_embedder.weight": s["txt_in.weight"],
        "context_embedder.bias": s["txt_in.bias"],
        "x_embedder.weight": s["img_in.weight"],
        "x_embedder.bias": s["img_in.bias"],
        "proj_out.weight": s["final_layer.linear.weight"],
        "proj_out.bias": s["final_layer.linear.bias"],
        "norm_out.linear.weight": _swap(s["final_layer.adaLN_modulation.1.weight"]),
        "norm_out.linear.bias": _swap(s["final_layer.adaLN_modulation.1.bias"]),
    }
    embedders = [("timestep_embedder", "time_in"), ("text_embedder", "vector_in")]
    if config.get("guidance_embeds"):
        embedders.append(("guidance_embedder", "guidance_in"))
    for d, o in embedders:
        for i, j in ((1, "in_layer"), (2, "out_layer")):
            for t in ("weight", "bias"):
                out[f"time_text_embed.{d}.linear_{i}.{t}"] = s[f"{o}.{j}.{t}"]
    for i in range(int(config["num_layers"])):
        b, o = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        for t in ("weight", "bias"):
            q, k, v = s[f"{o}img_attn.qkv.{t}"].chunk(3, dim=0)
            cq, ck, cv = s[f"{o}txt_attn.qkv.{t}"].chunk(3, dim=0)
            out.update(
                {
                    f"{b}attn.to_q.{t}": q,
                    f"{b}attn.to_k.{t}": k,
                    f"{b}attn.to_v.{t}": v,
                    f"{b}attn.add_q_proj.{t}": cq,
                    f"{b}attn.add_k_proj.{t}": ck,
                    f"{b}attn.add_v_proj.{t}": cv,
                    f"{b}norm1.linear.{t}": s[f"{o}img_mod.lin.{t}"],
                    f"{b}norm1_context.linear.{t}": s[f"{o}txt_mod.lin.{t}"],
                    f"{b}attn.to_out.0.{t}": s[f"{o}img_attn.proj.{t}"],
                    f"{b}attn.to_add_out.{t}": s[f"{o}txt_attn.proj.{t}"],
                    f"{b}ff.net.0.proj.{t}": s[f"{o}img_mlp.0.{t}"],
                    f"{b}ff.net.2.{t}": s[f"{o}img_mlp.2.{t}"],
                    f"{b}ff_context.net.0.proj.{t}": s[f"{o}txt_mlp.0.{t}"],
                    f"{b}ff_context.net.2.{t}": s[f"{o}txt_mlp.2.{t}"],
                }
            )
        out[f"{b}attn.norm_q.weight"] = s[f"{o}img_attn.norm.query_norm.scale"]
        out[f"{b}attn.norm_k.weight"] = s[f"{o}img_attn.norm.key_norm.scale"]
        out[f"{b}attn.norm_added_q.weight"] = s[f"{o}txt_attn.norm.query_norm.scale"]
        out[f"{b}attn.norm_added_k.weight"] = s[f"{o}txt_attn.norm.key_norm.scale"]
    for i in range(int(config["num_single_layers"])):
        b, o = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        for t in ("weight", "bias"):
            fused = s[f"{o}linear1.{t}"]
            q, k, v, mlp = fused.split((inner, inner, inner, fused.shape[0] - 3 * inner), dim=0)
            out.update(
                {
                    f"{b}attn.to_q.{t}": q,
                    f"{b}attn.to_k.{t}": k,
                    f"{b}attn.to_v.{t}": v,
                    f"{b}proj_mlp.{t}": mlp,
                    f"{b}norm.linear.{t}": s[f"{o}modulation.lin.{t}"],
                    f"{b}proj_out.{t}": s[f"{o}linear2.{t}"],
                }
            )
        out[f"{b}attn.norm_q.weight"] = s[f"{o}norm.query_norm.scale"]
        out[f"{b}attn.norm_k.weight"] = s[f"{o}norm.key_norm.scale"]
    return out
