"""MiDaS DPT-hybrid (``dpt_hybrid-midas-501f0c75.pt``, the depth annotator's weights) in
transformers' ``DPTForDepthEstimation``: its config and the renaming of the file's tensors.

The MiDaS file holds timm names: a ViT-B/16 (``pretrained.model.blocks.*``) on a ResNetV2-50
stem of 3 + 4 + 9 bottlenecks (``pretrained.model.patch_embed.backbone.*``), the reassemble
convs (``pretrained.act_postprocess{3,4}.*``; stages 1 and 2 come straight from the ResNet and
have none) and the fusion decoder (``scratch.*``). transformers' BiT backbone, ViT layers and
DPT neck have the same tensors under other names; only timm's fused ``qkv`` is split. timm's
LayerNorm eps (1e-6) is kept.
"""

from __future__ import annotations

import re

_BACKBONE = "dpt.embeddings.backbone.bit."

#: (timm / MiDaS name pattern, transformers name) — whole-name matches, tried in order.
_RULES: list[tuple[str, str]] = [
    (r"pretrained\.model\.cls_token", "dpt.embeddings.cls_token"),
    (r"pretrained\.model\.pos_embed", "dpt.embeddings.position_embeddings"),
    (r"pretrained\.model\.patch_embed\.proj\.(weight|bias)", r"dpt.embeddings.projection.\1"),
    (
        r"pretrained\.model\.patch_embed\.backbone\.stem\.conv\.weight",
        _BACKBONE + "embedder.convolution.weight",
    ),
    (
        r"pretrained\.model\.patch_embed\.backbone\.stem\.norm\.(weight|bias)",
        _BACKBONE + r"embedder.norm.\1",
    ),
    (
        r"pretrained\.model\.patch_embed\.backbone\.stages\.(\d+)\.blocks\.(\d+)\.(.+)",
        _BACKBONE + r"encoder.stages.\1.layers.\2.\3",
    ),
    (r"pretrained\.model\.blocks\.(\d+)\.norm1\.(.+)", r"dpt.encoder.layer.\1.layernorm_before.\2"),
    (r"pretrained\.model\.blocks\.(\d+)\.norm2\.(.+)", r"dpt.encoder.layer.\1.layernorm_after.\2"),
    (
        r"pretrained\.model\.blocks\.(\d+)\.attn\.proj\.(.+)",
        r"dpt.encoder.layer.\1.attention.output.dense.\2",
    ),
    (
        r"pretrained\.model\.blocks\.(\d+)\.mlp\.fc1\.(.+)",
        r"dpt.encoder.layer.\1.intermediate.dense.\2",
    ),
    (r"pretrained\.model\.blocks\.(\d+)\.mlp\.fc2\.(.+)", r"dpt.encoder.layer.\1.output.dense.\2"),
    (r"pretrained\.model\.norm\.(weight|bias)", r"dpt.layernorm.\1"),
    (
        r"pretrained\.act_postprocess([34])\.0\.project\.0\.(weight|bias)",
        r"neck.reassemble_stage.readout_projects.{\1-1}.0.\2",
    ),
    (
        r"pretrained\.act_postprocess([34])\.3\.(weight|bias)",
        r"neck.reassemble_stage.layers.{\1-1}.projection.\2",
    ),
    (
        r"pretrained\.act_postprocess4\.4\.(weight|bias)",
        r"neck.reassemble_stage.layers.3.resize.\1",
    ),
    (r"scratch\.layer([1-4])_rn\.weight", r"neck.convs.{\1-1}.weight"),
    (
        r"scratch\.refinenet([1-4])\.out_conv\.(weight|bias)",
        r"neck.fusion_stage.layers.{4-\1}.projection.\2",
    ),
    (
        r"scratch\.refinenet([1-4])\.resConfUnit([12])\.conv([12])\.(weight|bias)",
        r"neck.fusion_stage.layers.{4-\1}.residual_layer\2.convolution\3.\4",
    ),
    (r"scratch\.output_conv\.(\d)\.(weight|bias)", r"head.head.\1.\2"),
]
_QKV = re.compile(r"pretrained\.model\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)")
#: In the file but not part of the depth model: timm's ImageNet classifier.
_UNUSED = re.compile(r"pretrained\.model\.head\.(weight|bias)")


def dpt_hybrid_config():
    """transformers' ``DPTConfig`` of MiDaS v3 DPT-hybrid (ViT-B/16 on ResNet-50 at 384²)."""
    from transformers import DPTConfig

    return DPTConfig(
        is_hybrid=True,
        neck_hidden_sizes=[256, 512, 768, 768],
        reassemble_factors=[1, 1, 1, 0.5],
        backbone_featmap_shape=[1, 1024, 24, 24],
        readout_type="project",
        layer_norm_eps=1e-6,
        use_auxiliary_head=False,
    )


def _arith(name: str) -> str:
    """Evaluate the ``{a-b}`` index arithmetic a rule's replacement leaves in a name."""
    return re.sub(r"\{(\d+)-(\d+)\}", lambda m: str(int(m[1]) - int(m[2])), name)


def midas_key(name: str) -> str | None:
    """The transformers name of one MiDaS tensor (None for the unused classifier); KeyError
    for a name that is not DPT-hybrid's."""
    if _UNUSED.fullmatch(name):
        return None
    for pattern, target in _RULES:
        m = re.fullmatch(pattern, name)
        if m:
            return _arith(m.expand(target))
    raise KeyError(f"{name} is not a MiDaS DPT-hybrid tensor")


def midas_to_dpt(state: dict) -> dict:
    """The MiDaS file's state dict under transformers' names, ``qkv`` split into query, key and
    value (timm stacks them in that order along the output dimension)."""
    out = {}
    for name, tensor in state.items():
        m = _QKV.fullmatch(name)
        if m:
            layer, kind = m.groups()
            q, k, v = tensor.chunk(3, dim=0)
            for part, t in (("query", q), ("key", k), ("value", v)):
                out[f"dpt.encoder.layer.{layer}.attention.attention.{part}.{kind}"] = t
            continue
        target = midas_key(name)
        if target is not None:
            out[target] = tensor
    return out
