"""LoRAs on the fast path's compiled UNet (engine/prompts/lora_slots.py) on the CPU: switching
LoRAs never recompiles after the first LoRA job, every image is the eager image of the same
recipe, and LoRAs that do not fit the slots run eager, with the reason in Health.

dynamo's CompileCounter is the "compiler" (guards and recompiles are real, the backend is eager),
as in tests/engine/test_fast_path.py; the reference is the same model loaded without a fast
path, where LoRAs load and unload the plain way."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from engine.protocol import GenerateJob
from tests.support.job_context import InProcessContext, make_job
from tests.support.loras import write_kohya_lora, write_peft_lora

MODEL = "sfumato-tiny"
#: two UNet traces (about a minute each here) and ~25 small renders
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
#: 0.5/255 on average, in 0..255 pixel units
TOLERANCE = 0.5


def _load(fast=None):
    from engine.models.loader import ModelManager
    from engine.models.registry import ModelRegistry

    manager = ModelManager("cpu", "fp32", fast)
    return manager, manager.load(ModelRegistry([]).get(MODEL))


@pytest.fixture(scope="module")
def plain():
    manager, loaded = _load()
    yield loaded
    manager.unload()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, plain):
    root = tmp_path_factory.mktemp("models")
    loras = root / "loras"
    write_kohya_lora(plain.pipe, loras / "ink.safetensors")  # rank 4, alpha 2
    write_peft_lora(plain.pipe, loras / "paper.safetensors")  # rank 4
    write_peft_lora(plain.pipe, loras / "third.safetensors", seed=7, rank=2)
    write_kohya_lora(plain.pipe, loras / "big.safetensors", seed=5, rank=16)  # > the slots' 8
    write_peft_lora(
        plain.pipe,
        loras / "timeproj.safetensors",
        seed=9,  # a layer outside them
        unet_targets=("to_q", "to_v", "time_emb_proj"),
    )
    return root


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    """The embedded model behind a fast path with two LoRA slots of rank 8."""
    from torch._dynamo.testing import CompileCounter

    from engine.fast_path import FastPath

    torch._dynamo.reset()
    counter = CompileCounter()
    fast = FastPath(
        tmp_path_factory.mktemp("cache"), enabled=True, backend=counter, lora_rank=8, lora_slots=2
    )
    manager, loaded = _load(fast)
    assert fast.wait(300) == "on", fast.message
    # count the steps that ran compiled
    forward = vars(loaded.pipe.unet)["forward"]
    compiled, calls = forward.compiled, []
    forward.compiled = lambda *a, **kw: (calls.append(1), compiled(*a, **kw))[1]
    yield fast, counter, calls, manager, loaded
    manager.unload()
    torch._dynamo.reset()


def render(loaded, folder, tmp_path, tags: str = "") -> np.ndarray:
    from engine.generate import run_generate

    params = {
        "model": MODEL,
        "prompt": f"a cat {tags}".strip(),
        "seed": 3,
        "width": 64,
        "height": 64,
        "steps": 3,
        "cfg_scale": 5.0,
    }
    job = make_job(GenerateJob(params=params))
    ctx = InProcessContext(loaded, job, tmp_path)
    ctx.model_folders = [folder]
    run_generate(job, ctx, None)
    return np.stack([np.asarray(Image.open(r.path), np.float32) for r in job.results])


def test_switching_loras_never_recompiles_and_each_image_is_the_eager_one(
    counted, plain, folder, tmp_path
):
    fast, counter, calls, _manager, loaded = counted
    base = render(loaded, folder, tmp_path)
    # the first LoRA job installs the slots; the UNet compiles again in the background and
    # this job runs eager
    first = render(loaded, folder, tmp_path, "<lora:ink:0.8>")
    assert np.abs(first - render(plain, folder, tmp_path, "<lora:ink:0.8>")).mean() < TOLERANCE
    assert fast.wait(900) == "on", fast.message
    assert "LoRA slots: 2 × rank 8" in fast.detail
    frames = counter.frame_count
    sequence = [
        "<lora:paper:1>",
        "<lora:ink:0.8> <lora:paper:0.6>",
        "",
        "<lora:ink:0.8>",
        "<lora:ink:0>",
        "<lora:paper:0.5> <lora:ink:1:0.7>",
        "",
    ]
    images = {}
    for tags in sequence:
        before = len(calls)
        images[tags] = render(loaded, folder, tmp_path, tags)
        assert len(calls) - before == 3, f"{tags!r} did not run compiled every step"
    assert counter.frame_count == frames, "a LoRA change recompiled the UNet"
    eager_base = render(plain, folder, tmp_path)
    for tags, image in images.items():
        eager = render(plain, folder, tmp_path, tags) if tags else eager_base
        diff = np.abs(image - eager)
        assert diff.mean() < TOLERANCE and diff.max() <= 8, (tags, diff.mean(), diff.max())
        if tags not in ("", "<lora:ink:0>"):
            assert np.abs(image - eager_base).mean() > 5, f"{tags!r} had no effect"
    # no LoRA after LoRA jobs: the slots out, the graph compiled at load, the base bit for bit
    assert (images[""] == base).all()
    assert np.abs(images["<lora:ink:0>"] - base).mean() < TOLERANCE


@pytest.mark.parametrize(
    ("tags", "why"),
    [
        ("<lora:big:1>", "rank 16"),
        ("<lora:timeproj:1>", "time_emb_proj"),
        # (three random LoRAs at full weight make a chaotic image, where the fast path's
        # channels_last layout alone moves it by 3.5/255: half weights keep it an image)
        ("<lora:ink:0.5> <lora:paper:0.5> <lora:third:0.5>", "3 LoRAs with UNet weights"),
    ],
)
def test_loras_that_do_not_fit_run_eager_and_say_why(counted, plain, folder, tmp_path, tags, why):
    fast, counter, calls, _manager, loaded = counted
    render(loaded, folder, tmp_path, "<lora:paper:1>")  # the slots are in (whatever ran first)
    assert fast.wait(900) == "on", fast.message
    frames, before = counter.frame_count, len(calls)
    image = render(loaded, folder, tmp_path, tags)
    assert len(calls) == before, "a LoRA that does not fit ran compiled"
    assert why in fast.detail and "ran eager" in fast.detail
    diff = np.abs(image - render(plain, folder, tmp_path, tags))
    assert diff.mean() < TOLERANCE, diff.mean()
    # the slots are back as they were: the next fitting LoRA runs compiled, no recompile
    paper = render(loaded, folder, tmp_path, "<lora:paper:1>")
    assert len(calls) > before and counter.frame_count == frames
    assert np.abs(paper - render(plain, folder, tmp_path, "<lora:paper:1>")).mean() < TOLERANCE
    assert "LoRA slots" in fast.detail


def test_unloading_takes_the_slots_out(counted):
    from peft.tuners.tuners_utils import BaseTunerLayer

    fast, _counter, _calls, manager, loaded = counted
    manager.unload()
    unet = loaded.pipe.unet
    assert not any(isinstance(m, BaseTunerLayer) for m in unet.modules())
    assert "forward" not in vars(unet) and fast.state == "off" and "LoRA" not in fast.detail
