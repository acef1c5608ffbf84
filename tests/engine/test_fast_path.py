"""The fast path (engine/fast_path.py) on the CPU: what recompiles and what does not, the hooks
that must survive compilation, and (slow) inductor's image against the eager one."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch
from PIL import Image

from engine.fast_path import FastPath, bucket, job_allows
from engine.protocol import GenerateJob
from tests.support.job_context import InProcessContext, make_job

MODEL = "sfumato-tiny"
#: dynamo traces the UNet in Python: about a minute a graph on a busy two-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _load(fast: FastPath):
    from engine.models.loader import ModelManager
    from engine.models.registry import ModelRegistry

    manager = ModelManager("cpu", "fp32", fast)
    return manager, manager.load(ModelRegistry([]).get(MODEL))


def _render(loaded, tmp_path, fits=None, **params) -> np.ndarray:
    from engine.generate import run_generate

    params = {
        "model": MODEL,
        "prompt": "a red square",
        "seed": 3,
        "width": 64,
        "height": 64,
        "steps": 3,
        "cfg_scale": 5.0,
        **params,
    }
    job = make_job(GenerateJob(params=params))
    run_generate(job, InProcessContext(loaded, job, tmp_path), fits)
    return np.stack([np.asarray(Image.open(r.path), np.float32) for r in job.results])


def test_buckets():
    assert [bucket(n) for n in (1, 2, 3, 4, 5, 9, 33)] == [1, 2, 4, 4, 8, 16, 33]


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    """The embedded model behind a fast path whose 'compiler' counts the graphs it is given
    (dynamo's CompileCounter: dynamo's guards and recompiles are real, the backend is eager)."""
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    counter = CompileCounter()
    fast = FastPath(tmp_path_factory.mktemp("cache"), enabled=True, backend=counter)
    manager, loaded = _load(fast)
    assert fast.wait(120) == "on", fast.message
    yield fast, counter, loaded
    manager.unload()
    torch._dynamo.reset()


def test_warm_up_leaves_its_objects_out_of_the_collectors_full_passes(counted):
    """dynamo's graphs and caches (~250 000 objects) are frozen with the model when the warm-up
    ends: a full collection walking them stopped every thread, the event loop too, for 85-130
    ms (engine/gc_pauses.py)."""
    assert len(gc.get_objects()) < 50_000


def test_sampler_seed_prompt_cfg_and_steps_never_recompile(counted, tmp_path):
    fast, counter, loaded = counted
    _render(loaded, tmp_path)  # the warm-up's shapes: batch 1 with CFG, 64²
    after_first = counter.frame_count
    for params in (
        {"sampler": "DDIM", "seed": 9},
        {"sampler": "DPM++ 2M Karras", "steps": 5},
        {"sampler": "Euler", "prompt": "a long prompt about a blue circle " * 4},
        {"sampler": "DPM2", "cfg_scale": 9.0},
        {"sampler": "LMS", "seed": 123},
    ):
        _render(loaded, tmp_path, **params)
    assert counter.frame_count == after_first, "a sampler/seed/prompt change recompiled"
    assert fast.state == "on"


def test_new_sizes_stop_recompiling_and_batches_share_buckets(counted, tmp_path):
    _fast, counter, loaded = counted
    # The first new sizes make height and width dynamic (and flip one size-dependent choice of
    # the decoder's convolutions on the CPU): engine/fast_path.py's docstring.
    for w, h in ((48, 48), (80, 64), (96, 96)):
        _render(loaded, tmp_path, width=w, height=h)
    dynamic = counter.frame_count
    # (SD sizes: multiples of 8 latent pixels, as here; a size whose latent does not halve
    # evenly through the UNet takes its own upsampling branch, one recompile more)
    for w, h in ((64, 128), (96, 64), (128, 128)):
        _render(loaded, tmp_path, width=w, height=h)
    assert counter.frame_count == dynamic, "a new size recompiled after sizes became dynamic"
    _render(loaded, tmp_path, batch_size=3)  # UNet batch 6 → bucket 8, decoder 3 → 4
    twice = counter.frame_count
    _render(loaded, tmp_path, batch_size=4)  # 8: the same bucket
    _render(loaded, tmp_path, batch_size=2)  # 4
    assert counter.frame_count - twice <= 1


def test_compiled_path_runs_and_eager_is_the_reference(counted, tmp_path):
    _fast, counter, loaded = counted
    before = counter.frame_count
    compiled = _render(loaded, tmp_path, seed=5)
    with job_allows(False):
        eager = _render(loaded, tmp_path, seed=5)
    assert np.abs(compiled - eager).mean() < 0.5  # fused QKV only: float32 rounding
    assert counter.frame_count == before


def test_calibration_hook_acts_on_the_compiled_unet(counted):
    from engine.calibration import CalibrationTable, calibrated
    from engine.hooks import hook_names

    _fast, _counter, loaded = counted
    unet = loaded.pipe.unet
    table = CalibrationTable(
        torch.tensor([0.0, 999.0]), torch.full((2, 4), 0.5), torch.full((2, 4), 0.5)
    )
    x = torch.randn(2, 4, 8, 8)
    ehs = torch.randn(2, 77, unet.config.cross_attention_dim)
    with torch.no_grad():
        plain = unet(x, 500, encoder_hidden_states=ehs).sample
        with calibrated(unet, table, cfg=True):
            assert hook_names(unet) == ["calibration"]
            shifted = unet(x, 500, encoder_hidden_states=ehs).sample
    assert hook_names(unet) == []
    assert torch.allclose(plain - shifted, torch.full_like(plain, 0.5), atol=1e-5)
    from engine.fast_path import _CompiledForward

    assert isinstance(vars(unet)["forward"], _CompiledForward)


def test_detach_restores_the_eager_model(tmp_path):
    fast = FastPath(None, enabled=True, backend="eager")
    manager, loaded = _load(fast)
    assert fast.wait(120) == "on"
    manager.unload()
    assert fast.state == "off" and "forward" not in vars(loaded.pipe.unet)
    assert "forward" not in vars(loaded.pipe.vae.decoder)


def test_a_failing_compile_falls_back_to_eager(tmp_path):
    def broken(_gm, _inputs):
        raise RuntimeError("no compiler here")

    fast = FastPath(None, enabled=True, backend=broken)
    manager, loaded = _load(fast)
    assert fast.wait(120) == "failed" and "no compiler here" in fast.message
    image = _render(loaded, tmp_path)
    assert image.std() > 2
    manager.unload()


@pytest.mark.long
def test_inductor_image_matches_eager_within_tolerance(tmp_path):
    """Inductor's CPU backend (C++ through gcc) on the embedded model: the image of the
    compiled UNet and VAE decoder equals the eager one within 1/255 on average, 8/255 at most
    (fused QKV and inductor's reordered float32 sums; measured ≈ 0.1 and 2)."""
    torch._dynamo.reset()
    fast = FastPath(tmp_path / "cache", enabled=True, backend="inductor", mode="default")
    manager, loaded = _load(fast)
    assert fast.wait(900) == "on", fast.message
    compiled = _render(loaded, tmp_path, sampler="DPM++ 2M", seed=11)
    with job_allows(False):
        eager = _render(loaded, tmp_path, sampler="DPM++ 2M", seed=11)
    diff = np.abs(compiled - eager)
    assert diff.mean() <= 1.0 and diff.max() <= 8, (diff.mean(), diff.max())
    manager.unload()
    torch._dynamo.reset()
