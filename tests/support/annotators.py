"""An annotator folder in the lllyasviel/Annotators layout with randomly initialised weights of
the real networks (controlnet_aux's own classes), for HED / depth / pose control-map tests.

Same file names and state-dict keys as the published files, so the engine's real loading code
runs on them; no download. Sizes: ControlNetHED.pth 59 MB, body_pose_model.pth 209 MB,
dpt_hybrid-midas-501f0c75.pt 493 MB.
"""

from __future__ import annotations

from pathlib import Path


def write_annotator_folder(folder: Path, seed: int = 0, kinds=("hed", "pose", "depth")) -> Path:
    import torch

    from engine.video.annotators import WEIGHTS, _aux

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if "hed" in kinds:
        torch.save(_aux("hed").ControlNetHED_Apache2().state_dict(), folder / WEIGHTS["hed"])
    if "pose" in kinds:
        model = _aux("open_pose.body").bodypose_model()
        # the published file's keys lack the first component ("model0.conv1_1.weight" is
        # saved as "conv1_1.weight"); controlnet_aux's util.transfer maps them back
        state = {k.split(".", 1)[1]: v for k, v in model.state_dict().items()}
        torch.save(state, folder / WEIGHTS["pose"])
    if "depth" in kinds:
        torch.save(midas_state_dict(), folder / WEIGHTS["depth"])
    return folder


#: transformers name pattern → MiDaS (timm) name, the inverse of engine/video/midas_keys.py,
#: written from the timm / MiDaS module names (ViT ``blocks``, ResNetV2 ``stem`` / ``stages`` /
#: ``blocks``, ``act_postprocess``, ``scratch``).
_TO_MIDAS = [
    (r"dpt\.embeddings\.cls_token", "pretrained.model.cls_token"),
    (r"dpt\.embeddings\.position_embeddings", "pretrained.model.pos_embed"),
    (r"dpt\.embeddings\.projection\.(.+)", r"pretrained.model.patch_embed.proj.\1"),
    (
        r"dpt\.embeddings\.backbone\.bit\.embedder\.convolution\.weight",
        "pretrained.model.patch_embed.backbone.stem.conv.weight",
    ),
    (
        r"dpt\.embeddings\.backbone\.bit\.embedder\.norm\.(.+)",
        r"pretrained.model.patch_embed.backbone.stem.norm.\1",
    ),
    (
        r"dpt\.embeddings\.backbone\.bit\.encoder\.stages\.(\d+)\.layers\.(\d+)\.(.+)",
        r"pretrained.model.patch_embed.backbone.stages.\1.blocks.\2.\3",
    ),
    (r"dpt\.encoder\.layer\.(\d+)\.layernorm_before\.(.+)", r"pretrained.model.blocks.\1.norm1.\2"),
    (r"dpt\.encoder\.layer\.(\d+)\.layernorm_after\.(.+)", r"pretrained.model.blocks.\1.norm2.\2"),
    (
        r"dpt\.encoder\.layer\.(\d+)\.attention\.output\.dense\.(.+)",
        r"pretrained.model.blocks.\1.attn.proj.\2",
    ),
    (
        r"dpt\.encoder\.layer\.(\d+)\.intermediate\.dense\.(.+)",
        r"pretrained.model.blocks.\1.mlp.fc1.\2",
    ),
    (r"dpt\.encoder\.layer\.(\d+)\.output\.dense\.(.+)", r"pretrained.model.blocks.\1.mlp.fc2.\2"),
    (r"dpt\.layernorm\.(.+)", r"pretrained.model.norm.\1"),
    (
        r"neck\.reassemble_stage\.readout_projects\.(\d)\.0\.(.+)",
        r"pretrained.act_postprocess{\1+1}.0.project.0.\2",
    ),
    (
        r"neck\.reassemble_stage\.layers\.(\d)\.projection\.(.+)",
        r"pretrained.act_postprocess{\1+1}.3.\2",
    ),
    (r"neck\.reassemble_stage\.layers\.3\.resize\.(.+)", r"pretrained.act_postprocess4.4.\1"),
    (r"neck\.convs\.(\d)\.weight", r"scratch.layer{\1+1}_rn.weight"),
    (r"neck\.fusion_stage\.layers\.(\d)\.projection\.(.+)", r"scratch.refinenet{4-\1}.out_conv.\2"),
    (
        r"neck\.fusion_stage\.layers\.(\d)\.residual_layer(\d)\.convolution(\d)\.(.+)",
        r"scratch.refinenet{4-\1}.resConfUnit\2.conv\3.\4",
    ),
    (r"head\.head\.(\d)\.(.+)", r"scratch.output_conv.\1.\2"),
]


def midas_state_dict(seed: int = 0) -> dict:
    """A random DPT-hybrid under the names of ``dpt_hybrid-midas-501f0c75.pt``: timm's fused
    ``qkv`` per ViT block and its (unused) ImageNet classifier included."""
    import re

    import torch
    from transformers import DPTForDepthEstimation

    from engine.video.midas_keys import dpt_hybrid_config

    torch.manual_seed(seed)
    hf = DPTForDepthEstimation(dpt_hybrid_config()).state_dict()
    out: dict = {}
    for i in range(12):
        parts = [
            hf.pop(f"dpt.encoder.layer.{i}.attention.attention.{p}.{{}}".format(kind))
            for kind in ("weight", "bias")
            for p in ("query", "key", "value")
        ]
        out[f"pretrained.model.blocks.{i}.attn.qkv.weight"] = torch.cat(parts[:3])
        out[f"pretrained.model.blocks.{i}.attn.qkv.bias"] = torch.cat(parts[3:])
    for name, tensor in hf.items():
        for pattern, target in _TO_MIDAS:
            m = re.fullmatch(pattern, name)
            if m:
                midas = re.sub(
                    r"\{(\d)([+-])(\d)\}",
                    lambda a: str(int(a[1]) + int(a[3]) if a[2] == "+" else int(a[1]) - int(a[3])),
                    m.expand(target),
                )
                out[midas] = tensor
                break
        else:
            raise KeyError(f"no MiDaS name for {name}")
    out["pretrained.model.head.weight"] = torch.randn(1000, 768) * 0.02
    out["pretrained.model.head.bias"] = torch.zeros(1000)
    return out


def write_blob_person_pose_weights(folder: Path) -> Path:
    """OpenPose body weights made by hand so that it finds a person in a known place.

    Every part's heatmap is the frame's brightness (carried on one channel through the VGG
    trunk, then through stage 6 of the heatmap branch; every other weight is zero) and every
    limb's part-affinity field points right. A dark frame with two bright blobs side by side is
    then a person whose limbs from the neck (part 2) and the nose (part 1) run from the left blob
    to the right one: what the drawing must show, between the blobs, on an otherwise black map.
    """
    import torch

    from engine.video.annotators import WEIGHTS, _aux

    model = _aux("open_pose.body").bodypose_model()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        convs = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}

        def centre(conv, out_ch: int, in_ch: int, w: float) -> None:
            k = conv.kernel_size[0] // 2
            conv.weight[out_ch, in_ch, k, k] = w

        trunk = [n for n in convs if n.startswith("model0.")]
        for c in range(3):  # brightness = mean of B, G, R (the input is x/256 − 0.5)
            centre(convs[trunk[0]], 0, c, 1 / 3)
        for name in trunk[1:]:
            centre(convs[name], 0, 0, 1.0)
        stage6 = [n for n in convs if n.startswith("model6_2.")]
        centre(convs[stage6[0]], 0, 38 + 19, 1.0)  # input: [PAFs 38, heatmaps 19, trunk 128]
        for name in stage6[1:-1]:
            centre(convs[name], 0, 0, 1.0)
        for part in range(18):
            centre(convs[stage6[-1]], part, 0, 4.0)
        paf = convs[[n for n in convs if n.startswith("model6_1.")][-1]]
        paf.bias[0::2] = 1.0  # x components (even channels): pointing right; y: 0
    state = {k.split(".", 1)[1]: v for k, v in model.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / WEIGHTS["pose"])
    return folder
