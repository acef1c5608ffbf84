"""Single-file SD3/SD3.5 and Flux.1 checkpoints: shipped configs, key conversion, separate
ae/clip_l/t5xxl files, the T5 tokenizer beside the checkpoint, fp8, and what is missing.

No multi-GB weights: the tiny random pipelines of tests/support/tiny_flow.py are written in the
original key layouts by tests/support/flow_export.py and loaded back through
``engine.models.flow_single_file``; the real-size architectures are checked on the meta device.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from engine.errors import ModelLoadError
from engine.models import flow_checkpoint
from engine.models.flow_checkpoint import plan
from engine.models.flow_keys import flux_to_diffusers
from engine.models.flow_single_file import load_flow_single_file
from engine.models.registry import describe
from engine.models.single_file import CONFIGS
from tests.support.flow_export import (
    export_flux,
    export_flux_all_in_one,
    export_sd3,
    flux_transformer_to_original,
    sd3_transformer_to_original,
)

SD3_VARIANTS = {  # shipped transformer config -> (variant, published parameter count)
    "transformer": ("sd3-medium", 2_028_328_000),
    "transformer_sd35_medium": ("sd3.5-medium", 2_243_171_520),
    "transformer_sd35_large": ("sd3.5-large", 8_056_627_520),
}
FLUX_VARIANTS = {
    "transformer": ("flux-dev", 11_901_408_320),
    "transformer_schnell": ("flux-schnell", 11_891_178_560),
}


def _meta(cls, folder: Path, subfolder: str):
    from accelerate import init_empty_weights

    with init_empty_weights():
        return cls.from_config(cls.load_config(str(folder), subfolder=subfolder))


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("subfolder", list(SD3_VARIANTS))
def test_sd3_configs_build_the_published_sizes_and_the_original_keys_convert(subfolder):
    """Parameter counts as published; diffusers' converter maps the original key layout (with
    real shapes) onto the config exactly; the header classifies as the right variant."""
    from diffusers import SD3Transformer2DModel
    from diffusers.loaders.single_file_utils import convert_sd3_transformer_checkpoint_to_diffusers

    variant, count = SD3_VARIANTS[subfolder]
    model = _meta(SD3Transformer2DModel, CONFIGS / "sd3", subfolder)
    assert _count(model) == count
    original = sd3_transformer_to_original(model.state_dict())
    shapes = {k: list(v.shape) for k, v in original.items()}
    assert flow_checkpoint._variant("sd3", shapes, "x")[:2] == (variant, subfolder)
    converted = convert_sd3_transformer_checkpoint_to_diffusers(dict(original))
    expected = model.state_dict()
    assert set(converted) == set(expected)
    assert all(converted[k].shape == expected[k].shape for k in expected)


@pytest.mark.parametrize("subfolder", list(FLUX_VARIANTS))
def test_flux_configs_build_the_published_sizes_and_the_original_keys_convert(subfolder):
    from diffusers import FluxTransformer2DModel

    variant, count = FLUX_VARIANTS[subfolder]
    model = _meta(FluxTransformer2DModel, CONFIGS / "flux", subfolder)
    assert _count(model) == count
    original = flux_transformer_to_original(model.state_dict())
    shapes = {k: list(v.shape) for k, v in original.items()}
    assert flow_checkpoint._variant("flux", shapes, "x")[:2] == (variant, subfolder)
    converted = flux_to_diffusers(original, model.config)
    expected = model.state_dict()
    assert set(converted) == set(expected)
    assert all(converted[k].shape == expected[k].shape for k in expected)


def test_text_encoder_and_vae_configs_are_the_published_ones():
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    with init_empty_weights():
        t5 = T5EncoderModel(T5Config.from_pretrained(CONFIGS / "flux" / "text_encoder_2"))
        clip_g = CLIPTextModelWithProjection(
            CLIPTextConfig.from_pretrained(CONFIGS / "sd3" / "text_encoder_2")
        )
    t5.tie_weights()
    unique = {id(p): p.numel() for p in t5.parameters()}
    assert (
        sum(unique.values())
        - (0 if t5.encoder.embed_tokens.weight is t5.shared.weight else t5.shared.weight.numel())
        == 4_762_310_656
    )  # T5-v1.1-XXL
    assert _count(clip_g) == 694_659_840  # OpenCLIP ViT-bigG text tower
    assert _count(_meta(AutoencoderKL, CONFIGS / "flux", "vae")) == 83_819_683  # 16-channel AE
    assert json.loads(
        (CONFIGS / "sd3" / "text_encoder_3" / "config.json").read_text()
    ) == json.loads((CONFIGS / "flux" / "text_encoder_2" / "config.json").read_text())


def test_flux_fill_and_depth_are_refused_with_the_reason():
    shapes = {"img_in.weight": [3072, 384], "double_blocks.0.img_attn.qkv.weight": [9216, 3072]}
    with pytest.raises(ModelLoadError, match="Fill"):
        flow_checkpoint._variant("flux", shapes, "flux1-fill-dev.safetensors")


# ---------------------------------------------------------------------------------------------
# Tiny exports, loaded back


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    from tests.support.tiny_flow import build_tiny_flux, build_tiny_sd3

    root = tmp_path_factory.mktemp("tiny-flow-src")
    return {"sd3": build_tiny_sd3(root / "sd3"), "flux": build_tiny_flux(root / "flux")}


def _same_weights(pipe, folder: Path) -> None:
    from diffusers import DiffusionPipeline

    ref = DiffusionPipeline.from_pretrained(folder, local_files_only=True)
    for name, comp in ref.components.items():
        if isinstance(comp, torch.nn.Module):
            a, b = comp.state_dict(), getattr(pipe, name).state_dict()
            assert set(a) <= set(b), name
            for k in a:
                assert torch.equal(a[k], b[k].to(a[k].dtype)), (name, k)


def test_an_sd3_file_with_its_text_encoders_loads_the_same_weights(tiny_dirs, tmp_path):
    ckpt = export_sd3(tiny_dirs["sd3"], tmp_path)
    p = plan(ckpt)
    assert p.architecture == "sd3" and p.problem == ""
    assert p.parts == {"vae": "file", "clip_l": "file", "clip_g": "file", "t5": "file"}
    assert p.uses_t5
    pipe = load_flow_single_file(ckpt)
    assert type(pipe).__name__ == "StableDiffusion3Pipeline"
    _same_weights(pipe, tiny_dirs["sd3"])


def test_flux_finds_ae_clip_l_and_t5xxl_beside_it_and_loads_the_same_weights(tiny_dirs, tmp_path):
    ckpt = export_flux(tiny_dirs["flux"], tmp_path)
    p = plan(ckpt)
    assert p.problem == "", p.problem
    assert {k: Path(v).name for k, v in p.parts.items()} == {
        "vae": "ae.safetensors",
        "clip_l": "clip_l.safetensors",
        "t5": "t5xxl_fp16.safetensors",
    }
    assert Path(p.t5_tokenizer).name == "t5_tokenizer.json"
    pipe = load_flow_single_file(ckpt)
    assert type(pipe).__name__ == "FluxPipeline"
    _same_weights(pipe, tiny_dirs["flux"])


def test_a_comfyui_all_in_one_flux_checkpoint_loads_the_same_weights(tiny_dirs, tmp_path):
    ckpt = export_flux_all_in_one(tiny_dirs["flux"], tmp_path)
    p = plan(ckpt)
    assert p.problem == "" and p.parts == {"vae": "file", "clip_l": "file", "t5": "file"}
    _same_weights(load_flow_single_file(ckpt), tiny_dirs["flux"])


def test_comfyui_folders_are_searched(tiny_dirs, tmp_path):
    """models/unet/flux.safetensors with models/vae/ae.safetensors and models/clip/…"""
    ckpt = export_flux(tiny_dirs["flux"], tmp_path / "unet")
    for name, sub in (
        ("ae.safetensors", "vae"),
        ("clip_l.safetensors", "clip"),
        ("t5xxl_fp16.safetensors", "text_encoders"),
    ):
        (tmp_path / sub).mkdir(exist_ok=True)
        shutil.move(tmp_path / "unet" / name, tmp_path / sub / name)
    p = plan(ckpt)
    assert p.problem == ""
    assert (
        Path(p.parts["vae"]).parent.name == "vae"
        and Path(p.parts["t5"]).parent.name == "text_encoders"
    )


@pytest.mark.parametrize(
    ("remove", "words"),
    [
        ("ae.safetensors", "put ae.safetensors"),
        ("clip_l.safetensors", "put clip_l.safetensors"),
        ("t5xxl_fp16.safetensors", "put t5xxl_fp16.safetensors"),
        ("t5_tokenizer.json", "beside it as t5_tokenizer.json"),
    ],
)
def test_a_missing_flux_part_is_named_in_the_list_and_at_load(tiny_dirs, tmp_path, remove, words):
    ckpt = export_flux(tiny_dirs["flux"], tmp_path)
    (tmp_path / remove).unlink()
    info = describe(ckpt, embedded=False)
    assert info.architecture == "flux" and words in info.problem, info.problem
    with pytest.raises(ModelLoadError, match=words.split()[-1].replace(".", r"\.")):
        load_flow_single_file(ckpt)


def test_a_tokenizer_that_is_not_t5s_is_refused(tiny_dirs, tmp_path):
    ckpt = export_flux(tiny_dirs["flux"], tmp_path)
    (tmp_path / "t5_tokenizer.json").write_text(
        json.dumps({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})
    )
    assert "not T5's" in describe(ckpt, embedded=False).problem
    assert (
        flow_checkpoint.check_t5_tokenizer(
            tiny_dirs["flux"] / "tokenizer_2" / "tokenizer.json", vocab_rows=10
        )
        != ""
    )


def test_sd3_runs_without_t5_and_says_so(tiny_dirs, tmp_path):
    ckpt = export_sd3(tiny_dirs["sd3"], tmp_path / "clips", text_encoders=("clip_l", "clip_g"))
    info = describe(ckpt, embedded=False)
    assert info.problem == "" and "without T5" in info.note
    pipe = load_flow_single_file(ckpt)
    assert pipe.text_encoder_3 is None
    image = pipe(
        "a red cat",
        num_inference_steps=2,
        height=32,
        width=32,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert image.size == (32, 32)
    # T5 weights in the file but no tokenizer: still runs, and the note names the file to add
    ckpt = export_sd3(tiny_dirs["sd3"], tmp_path / "with-t5")
    (tmp_path / "with-t5" / "t5_tokenizer.json").unlink()
    info = describe(ckpt, embedded=False)
    assert info.problem == "" and "t5_tokenizer.json" in info.note


def test_sd3_without_clips_is_refused_with_the_files_to_add(tiny_dirs, tmp_path):
    ckpt = export_sd3(tiny_dirs["sd3"], tmp_path, text_encoders=())
    problem = describe(ckpt, embedded=False).problem
    assert "clip_l.safetensors, clip_g.safetensors" in problem


def test_fp8_files_load_upcast_to_the_compute_dtype(tiny_dirs, tmp_path):
    ckpt = export_flux(tiny_dirs["flux"], tmp_path, dtype=torch.float8_e4m3fn)
    assert (tmp_path / "t5xxl_fp8_e4m3fn.safetensors").is_file()
    p = plan(ckpt)
    assert p.fp8 and "fp8" in p.note and p.problem == ""
    pipe = load_flow_single_file(ckpt, torch.float32)
    for comp in (pipe.transformer, pipe.text_encoder_2):
        assert {t.dtype for t in comp.parameters()} == {torch.float32}
    from diffusers import FluxPipeline

    src = FluxPipeline.from_pretrained(tiny_dirs["flux"], local_files_only=True).transformer
    w = src.state_dict()["x_embedder.weight"]
    assert torch.equal(
        pipe.transformer.state_dict()["x_embedder.weight"],
        w.to(torch.float8_e4m3fn).to(torch.float32),
    )
    image = pipe(
        "a red cat",
        num_inference_steps=2,
        height=32,
        width=32,
        guidance_scale=3.5,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert image.size == (32, 32)


def test_parts_are_not_listed_as_models_and_unknown_sizes_say_what_to_add(tiny_dirs, tmp_path):
    ckpt = export_flux(tiny_dirs["flux"], tmp_path)
    for name in ("ae.safetensors", "clip_l.safetensors", "t5xxl_fp16.safetensors"):
        assert describe(tmp_path / name, embedded=False) is None
    info = describe(ckpt, embedded=False)
    assert (info.architecture, info.problem, info.native_size) == ("flux", "", 1024)
    shutil.rmtree(ckpt.with_name(ckpt.stem + ".config"))
    problem = describe(ckpt, embedded=False).problem
    assert "flux1-tiny.config/" in problem and "FLUX.1-dev" in problem
