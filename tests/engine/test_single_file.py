"""Single-file (A1111/CivitAI) checkpoints: shipped configs, tokenizer, detection, loading, errors.

No multi-GB weights: tiny random pipelines are written with original LDM key names
(``tests.support.ldm_export``) and loaded back through ``load_single_file``; the real-size
architectures are checked on the meta device (parameter counts, key names and shapes).
"""

from __future__ import annotations

import json
import math
import struct
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from engine.errors import ModelLoadError
from engine.models.single_file import (
    CONFIGS,
    classify_keys,
    clip_tokenizer,
    detect_architecture,
    inspect_checkpoint,
    load_single_file,
)
from tests.support.ldm_export import (
    build_tiny_pipeline,
    copy_configs,
    export_single_file,
    ldm_shapes_from_configs,
)

CONFIG_OF = {"sd1": "sd15", "sd2": "sd2", "sdxl": "sdxl"}


@cache
def real_shapes(arch: str) -> dict[str, list[int]]:
    """LDM key names and shapes of a real-size checkpoint of ``arch`` (meta device, no weights)."""
    return ldm_shapes_from_configs(CONFIGS / CONFIG_OF[arch], arch)


def write_header_only(
    path: Path, shapes: dict[str, list[int]], metadata: dict | None = None
) -> Path:
    """A valid safetensors file with ``shapes``' key names: zero tensors, big ones shrunk to ones.

    Small tensors (biases, norms, the UNet's input conv) keep their real shape, so the file is a
    few MB however large the model.
    """

    def shape(s: list[int]) -> list[int]:
        return s if math.prod(s) <= 65536 else [1] * len(s)

    save_file(
        {k: torch.zeros(shape(s), dtype=torch.float16) for k, s in shapes.items()},
        str(path),
        metadata=metadata,
    )
    return path


# ---------------------------------------------------------------------------------------------
# Shipped configs and tokenizer


@pytest.mark.parametrize(
    ("arch", "unet", "te", "te2"),
    [
        # published parameter counts of SD 1.5, SD 2.1 (OpenCLIP-H, 23 of 24 layers) and SDXL base
        ("sd15", 859_520_964, 123_060_480, None),
        ("sd2", 865_910_724, 340_387_840, None),
        ("sdxl", 2_567_463_684, 123_060_480, 694_659_840),
    ],
)
def test_configs_build_the_published_architectures(arch, unet, te, te2):
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    def count(m):
        return sum(p.numel() for p in m.parameters())

    folder = CONFIGS / arch
    with init_empty_weights():
        assert (
            count(
                UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet"))
            )
            == unet
        )
        assert (
            count(AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae")))
            == 83_653_863
        )
        assert count(CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder"))) == te
        if te2:
            cfg = CLIPTextConfig.from_pretrained(folder / "text_encoder_2")
            assert count(CLIPTextModelWithProjection(cfg)) == te2
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == (
        "StableDiffusionXLPipeline" if arch == "sdxl" else "StableDiffusionPipeline"
    )


def test_configs_tree_is_small():
    size = sum(
        f.stat().st_size for f in CONFIGS.rglob("*") if f.is_file() and "__pycache__" not in f.parts
    )
    assert size < 2 * 1024 * 1024


@pytest.mark.parametrize("arch", ["sd1", "sd2", "sdxl"])
def test_real_key_layout_converts_to_our_configs(arch):
    """diffusers' converters map the real LDM key layout exactly onto models from our configs."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
        convert_open_clip_checkpoint,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    shapes = real_shapes(arch)
    ckpt = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    folder = CONFIGS / CONFIG_OF[arch]

    def same(converted, model, strip_text_model=False):
        ref = {
            k: tuple(v.shape)
            for k, v in model.state_dict().items()
            if not k.endswith("position_ids")
        }
        got = {
            (k.removeprefix("text_model.") if strip_text_model else k): tuple(v.shape)
            for k, v in converted.items()
        }
        assert got == ref

    with init_empty_weights():
        ucfg = UNet2DConditionModel.load_config(folder / "unet")
        same(convert_ldm_unet_checkpoint(ckpt, ucfg), UNet2DConditionModel.from_config(ucfg))
        vcfg = AutoencoderKL.load_config(folder / "vae")
        same(convert_ldm_vae_checkpoint(ckpt, vcfg), AutoencoderKL.from_config(vcfg))
        te = CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder"))
        if arch == "sd2":
            same(convert_open_clip_checkpoint(te, ckpt), te, strip_text_model=True)
        else:
            same(convert_ldm_clip_checkpoint(ckpt), te, strip_text_model=True)
        if arch == "sdxl":
            te2 = CLIPTextModelWithProjection(
                CLIPTextConfig.from_pretrained(folder / "text_encoder_2")
            )
            same(
                convert_open_clip_checkpoint(te2, ckpt, prefix="conditioner.embedders.1.model."),
                te2,
            )

    # anchors from real files: key counts per component and a few well-known shapes
    n_unet = sum(k.startswith("model.diffusion_model.") for k in shapes)
    assert n_unet == {"sd1": 686, "sd2": 686, "sdxl": 1680}[arch]
    assert sum(k.startswith("first_stage_model.") for k in shapes) == 248
    assert shapes["model.diffusion_model.input_blocks.0.0.weight"] == [320, 4, 3, 3]
    assert shapes["first_stage_model.decoder.mid.attn_1.q.weight"] == [512, 512, 1, 1]
    if arch == "sd1":
        assert shapes[
            "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
        ] == [320, 768]
        assert len([k for k in shapes if k.startswith("cond_stage_model.")]) == 196
    if arch == "sd2":
        assert shapes[
            "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"
        ] == [320, 1024]
    if arch == "sdxl":
        assert shapes["model.diffusion_model.label_emb.0.0.weight"] == [1280, 2816]
        assert shapes["conditioner.embedders.1.model.text_projection"] == [1280, 1280]


def test_tokenizer_gives_openai_clip_ids():
    tok = clip_tokenizer(CONFIGS / "sd15" / "tokenizer")
    assert len(tok) == 49408
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tok("An astronaut riding a horse").input_ids == [
        49406,
        550,
        18376,
        6765,
        320,
        4558,
        49407,
    ]
    ids = tok("a cat", padding="max_length", max_length=tok.model_max_length).input_ids
    assert len(ids) == 77 and ids[-1] == 49407  # OpenAI CLIP pads with <|endoftext|>


def test_openclip_tokenizers_pad_with_exclamation_mark():
    for folder in (CONFIGS / "sd2" / "tokenizer", CONFIGS / "sdxl" / "tokenizer_2"):
        tok = clip_tokenizer(folder)
        ids = tok("a photo of a cat", padding="max_length", max_length=77).input_ids
        assert ids[:7] == [49406, 320, 1125, 539, 320, 2368, 49407]
        assert ids[7:] == [0] * 70
    assert clip_tokenizer(CONFIGS / "sdxl" / "tokenizer").pad_token == "<|endoftext|>"


# ---------------------------------------------------------------------------------------------
# Detection from headers


@pytest.mark.parametrize("arch", ["sd1", "sd2", "sdxl"])
def test_detects_real_key_layouts(arch, tmp_path):
    shapes = real_shapes(arch)
    info = classify_keys(shapes, {}, "model.safetensors")
    assert (info.architecture, info.context_dim, info.unsupported) == (
        arch,
        {"sd1": 768, "sd2": 1024, "sdxl": 2048}[arch],
        None,
    )
    # the same key names in a real (tiny-tensor) file, read back from the header only
    assert detect_architecture(write_header_only(tmp_path / f"{arch}.safetensors", shapes)) == arch


def test_detects_unet_only_files_by_shape():
    for arch in ("sd1", "sd2", "sdxl"):
        unet_only = {
            k: s for k, s in real_shapes(arch).items() if k.startswith("model.diffusion_model.")
        }
        info = classify_keys(unet_only)
        assert info.architecture == arch and not info.has_text_encoder and not info.has_vae


def test_prediction_type_hints(tmp_path):
    sd2 = real_shapes("sd2")
    assert classify_keys(sd2).default_prediction_type() == "v_prediction"
    assert classify_keys(real_shapes("sd1")).default_prediction_type() == "epsilon"
    info = classify_keys(sd2, {}, "v2-1_512-ema-pruned-base.safetensors")
    assert info.prediction_type == "epsilon" and info.prediction_source == "file name"
    for name in (
        "768-v-ema.safetensors",
        "v2-1_768-ema-pruned.safetensors",
        "my-vpred-mix.safetensors",
    ):
        assert classify_keys(sd2, {}, name).prediction_type == "v_prediction", name
    for name in ("512-base-ema.safetensors", "v2-1_512-ema-pruned.safetensors"):
        assert classify_keys(sd2, {}, name).prediction_type == "epsilon", name
    assert classify_keys(sd2, {}, "based-on-768.safetensors").prediction_source == "file name"
    assert classify_keys(sd2, {}, "baseline.safetensors").prediction_type is None
    meta = {"modelspec.prediction_type": "epsilon"}
    assert classify_keys(sd2, meta, "x.safetensors").prediction_type == "epsilon"
    xl = dict(real_shapes("sdxl"))
    assert classify_keys(xl).prediction_type is None
    xl["v_pred"] = [0]
    xl["ztsnr"] = [0]
    info = classify_keys(xl)
    assert info.prediction_type == "v_prediction" and info.zero_terminal_snr


def test_refuses_variants_it_cannot_run():
    inpaint = dict(real_shapes("sd1"))
    inpaint["model.diffusion_model.input_blocks.0.0.weight"] = [320, 9, 3, 3]
    assert "inpainting" in classify_keys(inpaint).unsupported
    refiner = {
        k.replace("conditioner.embedders.1.", "conditioner.embedders.0."): s
        for k, s in real_shapes("sdxl").items()
        if not k.startswith("conditioner.embedders.0.")
    }
    assert "refiner" in classify_keys(refiner).unsupported


# ---------------------------------------------------------------------------------------------
# Loading tiny checkpoints end to end


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection attempt (say, to the Hugging Face hub) fails the test."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    """arch -> (diffusers pipeline, LDM single file, config folder) for tiny sd1/sd2/sdxl models."""
    import diffusers

    from tests.support.tiny_sd import build_tiny_sd

    root = tmp_path_factory.mktemp("single_file")
    out = {}
    for arch in ("sd1", "sd2", "sdxl"):
        if arch == "sd1":
            folder = build_tiny_sd(root / "tiny-sd1")
        else:
            folder = build_tiny_pipeline(arch, root / f"tiny-{arch}")
        cls = (
            diffusers.StableDiffusionXLPipeline
            if arch == "sdxl"
            else diffusers.StableDiffusionPipeline
        )
        pipe = cls.from_pretrained(folder, local_files_only=True)
        ckpt = export_single_file(pipe, root / f"tiny-{arch}.safetensors", arch)
        # sd1 keeps its own (byte-level) tokenizer; sd2/sdxl use the shipped CLIP BPE
        cfg = copy_configs(folder, root / f"configs-{arch}", keep_vocab=arch == "sd1")
        out[arch] = (pipe, ckpt, cfg)
    return out


def _images(pipe, **kw):
    return pipe(
        prompt="a photo of a cat",
        num_inference_steps=2,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
        **kw,
    ).images


@pytest.mark.parametrize("arch", ["sd1", "sd2", "sdxl"])
def test_single_file_loads_to_the_same_pipeline(arch, tiny_checkpoints):
    ref, ckpt, cfg = tiny_checkpoints[arch]
    assert detect_architecture(ckpt) == arch
    pipe = load_single_file(ckpt, torch.float32, config_dir=cfg)
    assert type(pipe) is type(ref)
    for name, module in ref.components.items():
        if isinstance(module, torch.nn.Module):
            want, got = module.state_dict(), getattr(pipe, name).state_dict()
            assert want.keys() == got.keys(), name
            assert all(torch.equal(want[k], got[k]) for k in want), name
    assert pipe.scheduler.config.prediction_type == ref.scheduler.config.prediction_type
    np.testing.assert_allclose(_images(pipe), _images(ref), atol=1e-4)


def test_prediction_type_override_and_dtype(tiny_checkpoints):
    _, ckpt, cfg = tiny_checkpoints["sd2"]
    assert load_single_file(ckpt, config_dir=cfg).scheduler.config.prediction_type == "v_prediction"
    pipe = load_single_file(ckpt, torch.bfloat16, prediction_type="epsilon", config_dir=cfg)
    assert pipe.scheduler.config.prediction_type == "epsilon"
    assert pipe.unet.dtype == torch.bfloat16 and pipe.text_encoder.dtype == torch.bfloat16
    assert (
        load_single_file(ckpt, None, "v", config_dir=cfg).scheduler.config.prediction_type
        == "v_prediction"
    )
    with pytest.raises(ModelLoadError, match="Unknown prediction type"):
        load_single_file(ckpt, None, "x0-ish", config_dir=cfg)


# ---------------------------------------------------------------------------------------------
# Errors a person can act on


def test_truncated_and_garbage_files(tiny_checkpoints, tmp_path):
    _, ckpt, _ = tiny_checkpoints["sd1"]
    data = ckpt.read_bytes()
    for name, content in [
        ("truncated.safetensors", data[: len(data) // 2]),
        ("header-cut.safetensors", data[:100]),
        ("empty.safetensors", b""),
        ("garbage.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!" + b"\0" * 64),
        ("huge-header.safetensors", struct.pack("<Q", 2**40) + b"{}"),
    ]:
        path = tmp_path / name
        path.write_bytes(content)
        for call in (detect_architecture, lambda p: load_single_file(p, torch.float32)):
            with pytest.raises(ModelLoadError, match="not a valid safetensors file.*re-download"):
                call(path)


def test_files_that_are_not_sd_checkpoints(tmp_path):
    cases = {
        "random.safetensors": (
            {"weight": torch.zeros(2, 2)},
            "does not look like a Stable Diffusion checkpoint",
        ),
        "lora.safetensors": (
            {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 4)},
            "is a LoRA",
        ),
        "vae.safetensors": (
            {"encoder.down.0.block.0.conv1.weight": torch.zeros(1)},
            "standalone VAE",
        ),
        "flux.safetensors": (
            {"model.diffusion_model.double_blocks.0.img_attn.norm.key_norm.scale": torch.zeros(1)},
            "Flux",
        ),
    }
    for name, (tensors, message) in cases.items():
        path = tmp_path / name
        save_file(tensors, str(path))
        with pytest.raises(ModelLoadError, match=message):
            load_single_file(path, torch.float32)
        with pytest.raises(ModelLoadError, match=message):
            detect_architecture(path)


def test_pickles_and_missing_files_are_refused(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(
        ModelLoadError, match=r"\.ckpt pickles are not loaded for safety.*\.safetensors"
    ):
        load_single_file(ckpt, torch.float32)
    with pytest.raises(ModelLoadError, match="does not exist"):
        detect_architecture(tmp_path / "nope.safetensors")


def test_unsupported_and_incomplete_checkpoints(tiny_checkpoints, tmp_path):
    from safetensors.torch import load_file

    _, ckpt, cfg = tiny_checkpoints["sd1"]
    state = load_file(str(ckpt))

    partial = dict(state)
    partial.pop("model.diffusion_model.out.2.weight")
    save_file(partial, str(tmp_path / "partial.safetensors"))
    with pytest.raises(ModelLoadError, match="missing 1 weights of its UNet"):
        load_single_file(tmp_path / "partial.safetensors", torch.float32, config_dir=cfg)

    no_vae = {k: v for k, v in state.items() if not k.startswith("first_stage_model.")}
    save_file(no_vae, str(tmp_path / "no-vae.safetensors"))
    with pytest.raises(ModelLoadError, match="no VAE weights"):
        load_single_file(tmp_path / "no-vae.safetensors", torch.float32, config_dir=cfg)

    inpaint = write_header_only(
        tmp_path / "inpaint.safetensors",
        {**real_shapes("sd1"), "model.diffusion_model.input_blocks.0.0.weight": [320, 9, 3, 3]},
    )
    assert detect_architecture(inpaint) == "sd1"
    with pytest.raises(ModelLoadError, match="inpainting checkpoint"):
        load_single_file(inpaint, torch.float32)

    # an SD 1 file with SD 2's (real-size) configs: another block layout
    with pytest.raises(
        ModelLoadError, match=r"missing \d+ weights of its UNet.*not a full checkpoint"
    ):
        load_single_file(ckpt, torch.float32, config_dir=CONFIGS / "sd2")
    # same layout, other tensor shapes (SD 2's linear proj_in where SD 1 has 1x1 convs)
    _, sd2_ckpt, _ = tiny_checkpoints["sd2"]
    with pytest.raises(ModelLoadError, match="UNet weights do not fit.*wrong shape.*proj_in"):
        load_single_file(sd2_ckpt, torch.float32, config_dir=cfg)


def test_inspect_reports_metadata(tmp_path):
    path = write_header_only(
        tmp_path / "m.safetensors",
        real_shapes("sd2"),
        {"modelspec.architecture": "stable-diffusion-v2-768-v"},
    )
    info = inspect_checkpoint(path)
    assert info.architecture == "sd2" and info.prediction_type == "v_prediction"
    assert info.metadata["modelspec.architecture"] == "stable-diffusion-v2-768-v"
