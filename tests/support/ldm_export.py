"""Write diffusers weights as an original-LDM single-file checkpoint, for tests.

The inverse of diffusers' single-file conversion (``convert_ldm_unet_checkpoint``,
``convert_ldm_vae_checkpoint``, ``convert_ldm_clip_checkpoint``, ``convert_open_clip_checkpoint``),
written for any block layout, so a tiny random pipeline can be saved in the exact key format of
A1111/CivitAI files (SD 1.x: CLIP ``cond_stage_model.transformer``; SD 2.x: OpenCLIP
``cond_stage_model.model``; SDXL: ``conditioner.embedders.0/1``) and loaded back through
``engine.models.single_file``. Also lists real SD key names and shapes from configs on the meta
device, without any weights.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def unet_to_ldm(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, Any]:
    """diffusers ``UNet2DConditionModel`` keys -> ``model.diffusion_model.…`` keys."""
    n = int(config["layers_per_block"])
    up_has_attn = ["CrossAttn" in t for t in config["up_block_types"]]
    out: dict[str, Any] = {}
    for key, value in state.items():
        new = None
        for d, ldm in _UNET_TOP.items():
            if key.startswith(d + "."):
                new = ldm + key[len(d) :]
        if new is None:
            m = re.match(
                r"(down|up)_blocks\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.*)",
                key,
            )
            mm = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key)
            if m:
                side, i, kind, j, rest = (
                    m.group(1),
                    int(m.group(2)),
                    m.group(3),
                    int(m.group(4)),
                    m.group(5),
                )
                if side == "down":
                    if kind == "downsamplers":
                        new = (
                            f"input_blocks.{1 + i * (n + 1) + n}.0.op.{rest.removeprefix('conv.')}"
                        )
                    else:
                        idx = 1 + i * (n + 1) + j
                        new = f"input_blocks.{idx}.{0 if kind == 'resnets' else 1}.{rest}"
                else:
                    if kind == "upsamplers":
                        slot = 2 if up_has_attn[i] else 1
                        new = f"output_blocks.{i * (n + 1) + n}.{slot}.{rest}"
                    else:
                        idx = i * (n + 1) + j
                        new = f"output_blocks.{idx}.{0 if kind == 'resnets' else 1}.{rest}"
                if kind == "resnets":
                    new = _rename_resnet(new)
            elif mm:
                kind, j, rest = mm.group(1), int(mm.group(2)), mm.group(3)
                new = f"middle_block.{2 * j if kind == 'resnets' else 1}.{rest}"
                if kind == "resnets":
                    new = _rename_resnet(new)
        if new is None:
            raise KeyError(f"no LDM name for UNet key {key}")
        out["model.diffusion_model." + new] = value
    return out


def _rename_resnet(key: str) -> str:
    for d, ldm in _RESNET.items():
        key = key.replace(f".{d}.", f".{ldm}.")
    return key


def vae_to_ldm(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, Any]:
    """diffusers ``AutoencoderKL`` keys -> ``first_stage_model.…`` keys (attention as 1x1 convs)."""
    levels = len(config["block_out_channels"])
    out: dict[str, Any] = {}
    for key, value in state.items():
        new = key.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
        new = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.down.\1.block.", new)
        new = re.sub(
            r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", new
        )
        m = re.match(r"decoder\.up_blocks\.(\d+)\.(resnets|upsamplers)\.(\d+)\.(.*)", new)
        if m:
            i = levels - 1 - int(m.group(1))
            if m.group(2) == "resnets":
                new = f"decoder.up.{i}.block.{m.group(3)}.{m.group(4)}"
            else:
                new = f"decoder.up.{i}.upsample.{m.group(4)}"
        new = re.sub(
            r"mid_block\.resnets\.(\d+)\.", lambda g: f"mid.block_{int(g.group(1)) + 1}.", new
        )
        if "mid_block.attentions.0." in new:
            new = new.replace("mid_block.attentions.0.", "mid.attn_1.")
            for d, ldm in _VAE_ATTN.items():
                new = new.replace(f"attn_1.{d}.", f"attn_1.{ldm}.")
            if value.ndim == 2:
                value = value[:, :, None, None]
        out["first_stage_model." + new] = value
    return out


def clip_to_ldm(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, Any]:
    """transformers ``CLIPTextModel`` keys -> ``<prefix>text_model.…`` (OpenAI CLIP, as SD 1.x)."""
    return {
        prefix + (k if k.startswith("text_model.") else "text_model." + k): v
        for k, v in state.items()
        if not k.endswith("position_ids")
    }


def open_clip_to_ldm(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, Any]:
    """transformers ``CLIPTextModel(WithProjection)`` keys -> OpenCLIP ``<prefix>…`` keys.

    Without a ``text_projection`` (SD 2.x's encoder), an identity one is written, as SD 2.x files
    carry one that the pipeline does not use.
    """
    sd = {
        k.removeprefix("text_model."): v for k, v in state.items() if not k.endswith("position_ids")
    }
    out: dict[str, Any] = {}
    layers: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in sd.items():
        m = re.match(r"encoder\.layers\.(\d+)\.(.*)", k)
        if m:
            layers.setdefault(int(m.group(1)), {})[m.group(2)] = v
        elif k == "embeddings.token_embedding.weight":
            out[prefix + "token_embedding.weight"] = v
        elif k == "embeddings.position_embedding.weight":
            out[prefix + "positional_embedding"] = v
        elif k.startswith("final_layer_norm."):
            out[prefix + "ln_final." + k.split(".")[-1]] = v
        elif k == "text_projection.weight":
            out[prefix + "text_projection"] = v.T.contiguous()
        else:
            raise KeyError(f"no OpenCLIP name for text encoder key {k}")
    if prefix + "text_projection" not in out:
        width = out[prefix + "positional_embedding"].shape[-1]
        out[prefix + "text_projection"] = torch.eye(width)
    for i, p in sorted(layers.items()):
        base = f"{prefix}transformer.resblocks.{i}."
        for t in ("weight", "bias"):
            out[base + f"attn.in_proj_{t}"] = torch.cat(
                [p[f"self_attn.q_proj.{t}"], p[f"self_attn.k_proj.{t}"], p[f"self_attn.v_proj.{t}"]]
            )
            out[base + f"attn.out_proj.{t}"] = p[f"self_attn.out_proj.{t}"]
            out[base + f"ln_1.{t}"] = p[f"layer_norm1.{t}"]
            out[base + f"ln_2.{t}"] = p[f"layer_norm2.{t}"]
            out[base + f"mlp.c_fc.{t}"] = p[f"mlp.fc1.{t}"]
            out[base + f"mlp.c_proj.{t}"] = p[f"mlp.fc2.{t}"]
    return out


def pipeline_to_ldm(pipe: Any, arch: str) -> dict[str, Any]:
    """All of a SD / SDXL pipeline's weights under LDM names; ``arch`` picks the text format."""
    sd = unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config)
    sd.update(vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config))
    te = pipe.text_encoder.state_dict()
    if arch == "sd1":
        sd.update(clip_to_ldm(te, "cond_stage_model.transformer."))
    elif arch == "sd2":
        sd.update(open_clip_to_ldm(te, "cond_stage_model.model."))
    elif arch == "sdxl":
        sd.update(clip_to_ldm(te, "conditioner.embedders.0.transformer."))
        sd.update(
            open_clip_to_ldm(pipe.text_encoder_2.state_dict(), "conditioner.embedders.1.model.")
        )
    else:
        raise ValueError(arch)
    return sd


def export_single_file(
    pipe: Any, path: Path, arch: str, metadata: dict[str, str] | None = None
) -> Path:
    """Save ``pipe`` as an LDM-format ``.safetensors`` single-file checkpoint at ``path``."""
    from safetensors.torch import save_file

    sd = {k: v.detach().contiguous() for k, v in pipeline_to_ldm(pipe, arch).items()}
    save_file(sd, str(path), metadata=metadata)
    return Path(path)


def ldm_shapes_from_configs(config_dir: Path, arch: str) -> dict[str, list[int]]:
    """Real-size LDM key names and shapes for ``arch`` from a config folder, on the meta device."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    class _Pipe:
        pass

    pipe = _Pipe()
    with init_empty_weights():
        pipe.unet = UNet2DConditionModel.from_config(
            UNet2DConditionModel.load_config(config_dir / "unet")
        )
        pipe.vae = AutoencoderKL.from_config(AutoencoderKL.load_config(config_dir / "vae"))
        pipe.text_encoder = CLIPTextModel(
            CLIPTextConfig.from_pretrained(config_dir / "text_encoder")
        )
        if arch == "sdxl":
            pipe.text_encoder_2 = CLIPTextModelWithProjection(
                CLIPTextConfig.from_pretrained(config_dir / "text_encoder_2")
            )
    sd = pipeline_to_ldm(pipe, arch)
    return {k: list(v.shape) for k, v in sd.items()}


# ---------------------------------------------------------------------------------------------
# Tiny SD 2.x- and SDXL-shaped pipelines (SD 1.x: tests.support.tiny_sd.build_tiny_sd)


def build_tiny_pipeline(arch: str, path: Path, seed: int = 0) -> Path:
    """Save a random tiny ``sd2`` or ``sdxl`` pipeline (diffusers folder) at ``path``.

    The text encoders use CLIP's full 49,408-token vocabulary and the shipped tokenizers
    (``resources/configs/<arch>/tokenizer*``), so prompts go through the real BPE.
    """
    import diffusers
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from engine.models.single_file import CONFIGS, clip_tokenizer

    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=16,
        sample_size=64,
    )

    def text_config(act: str, hidden: int = 32) -> CLIPTextConfig:
        return CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=2,
            pad_token_id=1,
            hidden_size=hidden,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=49408,
            hidden_act=act,
            max_position_embeddings=77,
            projection_dim=32,
        )

    if arch == "sd2":
        unet = UNet2DConditionModel(
            block_out_channels=(32, 64),
            layers_per_block=1,
            sample_size=32,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            norm_num_groups=16,
        )
        pipe = diffusers.StableDiffusionPipeline(
            unet=unet,
            vae=vae,
            text_encoder=CLIPTextModel(text_config("gelu")),
            tokenizer=clip_tokenizer(CONFIGS / "sd2" / "tokenizer"),
            scheduler=diffusers.DDIMScheduler(
                beta_start=0.00085,
                beta_end=0.012,
                beta_schedule="scaled_linear",
                clip_sample=False,
                set_alpha_to_one=False,
                steps_offset=1,
                prediction_type="v_prediction",
            ),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    elif arch == "sdxl":
        unet = UNet2DConditionModel(
            block_out_channels=(32, 64),
            layers_per_block=2,
            sample_size=32,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            transformer_layers_per_block=(1, 2),
            projection_class_embeddings_input_dim=80,
            cross_attention_dim=32 + 40,
            norm_num_groups=16,
        )
        pipe = diffusers.StableDiffusionXLPipeline(
            unet=unet,
            vae=vae,
            text_encoder=CLIPTextModel(text_config("quick_gelu")),
            # widths differ as in real SDXL (768 / 1280): diffusers tells the encoders apart by them
            text_encoder_2=CLIPTextModelWithProjection(text_config("gelu", hidden=40)),
            tokenizer=clip_tokenizer(CONFIGS / "sdxl" / "tokenizer"),
            tokenizer_2=clip_tokenizer(CONFIGS / "sdxl" / "tokenizer_2"),
            scheduler=diffusers.EulerDiscreteScheduler(
                beta_start=0.00085,
                beta_end=0.012,
                beta_schedule="scaled_linear",
                steps_offset=1,
            ),
        )
    else:
        raise ValueError(arch)
    pipe.save_pretrained(path, safe_serialization=True)
    return Path(path)


def copy_configs(src: Path, dst: Path, keep_vocab: bool = True) -> Path:
    """Copy a diffusers folder's configs (no weights) to ``dst``, like ``resources/configs/<arch>``.

    With ``keep_vocab=False`` the tokenizers' vocabulary files are left out, so the shipped CLIP
    BPE is used for them.
    """
    import shutil

    src, dst = Path(src), Path(dst)
    for f in src.rglob("*"):
        if not f.is_file() or f.suffix in {".safetensors", ".bin"}:
            continue
        if not keep_vocab and f.name in {"tokenizer.json", "vocab.json", "merges.txt"}:
            continue
        target = dst / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
    return dst
