"""The engine on CUDA in float16 (``pytest -m gpu``; skipped without a CUDA GPU).

Run by bench/gpu_suite.py's first stage on a lent GPU machine, in process (no PyAV there: video
edits run from frames, as bench/video.py does):

- every path of tests/engine/test_dtypes.py on the embedded model: three samplers,
  Analytic-DDIM, calibration, uncertainty (DDIM, DPM2), the canny ControlNet in a LOVECon and a
  ControlVideo edit; plus the fast path (CUDA graphs) against eager;
- generate, uncertainty and a 16-frame LOVECon on an SD 1.5-architecture UNet with random
  weights at 512²: fp16 overflow, tensors left on the CPU, memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.timeout(600),
]


def _manager(fast=None):
    from engine.models.loader import ModelManager

    return ModelManager("cuda", "fp16", fast)


def _ctx(loaded, job, out: Path):
    from tests.engine.test_catalogue import FakeContext

    return FakeContext(loaded, job, out)


def _generate(loaded, out: Path, fits=None, **params) -> np.ndarray:
    from engine.generate import run_generate
    from engine.protocol import GenerateJob
    from tests.engine.test_catalogue import make_job

    size = loaded.pipe.unet.config.sample_size * loaded.pipe.vae_scale_factor
    params = {
        "prompt": "a red square",
        "seed": 3,
        "cfg_scale": 5.0,
        "width": size,
        "height": size,
        "steps": 4,
        **params,
    }
    job = make_job(GenerateJob(params=params))
    run_generate(job, _ctx(loaded, job, out), fits)
    images = np.stack([np.asarray(Image.open(r.path), np.float32) for r in job.results])
    assert np.isfinite(images).all() and images.std() > 2, f"blank image: {params}"
    return images


def _fit(loaded, kind: str, store, folder: Path, out: Path, **extra) -> None:
    from engine.fit_jobs import run_analytic_fit, run_calibration_fit
    from engine.protocol import AnalyticFitJob, CalibrationFitJob, UncertaintyFitJob
    from engine.uncertainty.fit_job import run_uncertainty_fit
    from tests.engine.test_catalogue import make_job

    spec, run = {
        "analytic": (AnalyticFitJob, run_analytic_fit),
        "calibration": (CalibrationFitJob, run_calibration_fit),
        "uncertainty": (UncertaintyFitJob, run_uncertainty_fit),
    }[kind]
    data = {"source": "folder", "folder": str(folder), "count": 8}
    job = make_job(spec(params={"data": data, **extra}))
    run(job, _ctx(loaded, job, out), fits=store)
    assert job.fit is not None


@pytest.fixture(scope="module")
def fit_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fit-images")
    rng = np.random.default_rng(0)
    for i in range(8):
        img = np.tile(rng.integers(0, 255, 3), (512, 512, 1)).astype(np.uint8)
        img[128:384, 128:384] = 255 - img[0, 0]
        Image.fromarray(img).save(folder / f"{i}.png")
    return folder


def _uncertain(loaded, out: Path, store, sampler: str) -> None:
    from engine.generate import run_generate
    from engine.protocol import GenerateJob
    from tests.engine.test_catalogue import make_job

    size = loaded.pipe.unet.config.sample_size * loaded.pipe.vae_scale_factor
    job = make_job(
        GenerateJob(
            params={
                "prompt": "a red square",
                "seed": 5,
                "width": size,
                "height": size,
                "steps": 6,
                "sampler": sampler,
                "uncertainty": True,
                "uncertainty_skip": 2,
                "uncertainty_samples": 3,
                "uncertainty_decodes": 4,
            }
        )
    )
    run_generate(job, _ctx(loaded, job, out), store)
    for r in job.results:
        arr = np.load(Path(r.path).with_name(r.uncertainty.map_name))
        assert np.isfinite(arr).all() and arr.min() >= 0 and arr.max() > 0
        assert np.asarray(Image.open(r.path)).std() > 2


def _video(loaded, controlnet, frames: int, size: int, method: str, steps: int = 4):
    from engine.video import controlvideo, lovecon
    from engine.video.control import canny_maps
    from engine.video.denoise import VideoNets
    from engine.video.sample_clip import sample_frames
    from engine.video_protocol import VideoEditParams

    pipe = loaded.pipe
    nets = VideoNets.of(pipe, controlnet, loaded.base_scheduler_config, "cuda", loaded.dtype)
    clip = sample_frames(frames, size, size)
    p = VideoEditParams(
        source="gpu-test",
        source_prompt="a t-rex on a white background",
        target_prompt="a t-rex on a blue background",
        edit_type="background",
        edit_phrase="t-rex",
        steps=steps,
        width=size,
        height=size,
        tuning_steps=2,
        method=method,
    )
    if method == "lovecon":
        out = lovecon.edit(nets, clip, canny_maps(clip), p, lambda *_: None)
    else:
        out, _info = controlvideo.edit(nets, clip, canny_maps(clip), p, lambda *_: None)
    assert out.shape == (frames, size, size, 3) and np.asarray(out, np.float32).std() > 2


# ------------------------------------------------------------------ the embedded model


@pytest.fixture(scope="module")
def tiny():
    from engine.models.registry import ModelRegistry

    manager = _manager()
    yield manager.load(ModelRegistry([]).get("sfumato-tiny"))
    manager.unload()


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ 2M Karras", "DPM++ SDE"])
def test_generate_fp16(tiny, tmp_path, sampler):
    assert tiny.pipe.unet.dtype == torch.float16
    _generate(tiny, tmp_path, sampler=sampler)


def test_analytic_calibration_uncertainty_fp16(tiny, tmp_path, fit_folder):
    from engine.fits import FitStore

    store = FitStore(tmp_path / "fits")
    _fit(tiny, "analytic", store, fit_folder, tmp_path, steps=[4])
    _fit(tiny, "calibration", store, fit_folder, tmp_path, timesteps=5)
    _fit(tiny, "uncertainty", store, fit_folder, tmp_path)
    _generate(tiny, tmp_path, store, sampler="Analytic-DDIM")
    _generate(tiny, tmp_path, store, sampler="DDIM", calibrated=True)
    for sampler in ("DDIM", "DPM2"):
        _uncertain(tiny, tmp_path, store, sampler)


@pytest.mark.parametrize("method", ["lovecon", "controlvideo"])
def test_canny_controlnet_video_fp16(tiny, method):
    from engine.models.registry import RESOURCES
    from engine.video.denoise import load_controlnet

    cn = load_controlnet(
        RESOURCES / "models/sfumato-tiny-canny", torch.device("cuda"), torch.float16
    )
    _video(tiny, cn, 4, 64, method)


def test_vae_overflow_gives_a_finite_image(tiny):
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)).sign() * 4e4
    out = tiny.pipe.vae.decode(z.to("cuda", torch.float16)).sample
    assert torch.isfinite(out).all()


def test_fast_path_with_cuda_graphs_matches_eager(tmp_path):
    from torch._dynamo.utils import counters

    from engine.fast_path import FastPath, job_allows
    from engine.models.registry import ModelRegistry

    torch._dynamo.reset()
    fast = FastPath(tmp_path / "cache", enabled=True)  # inductor, reduce-overhead on CUDA
    manager = _manager(fast)
    loaded = manager.load(ModelRegistry([]).get("sfumato-tiny"))
    assert fast.wait(300) == "on", fast.message
    compiled = _generate(loaded, tmp_path, sampler="DPM++ 2M", seed=11)
    graphs = counters["stats"]["unique_graphs"]
    _generate(loaded, tmp_path, sampler="Euler a", seed=12, prompt="another prompt")
    assert counters["stats"]["unique_graphs"] == graphs, "a sampler/seed/prompt change recompiled"
    with job_allows(False):
        eager = _generate(loaded, tmp_path, sampler="DPM++ 2M", seed=11)
    diff = np.abs(compiled - eager)
    assert diff.mean() <= 1.5 and diff.max() <= 24, (diff.mean(), diff.max())
    manager.unload()
    torch._dynamo.reset()


# ------------------------------------------------------------------ SD 1.5 architecture, 512²


@pytest.fixture(scope="module")
def sd15(tmp_path_factory):
    from bench.gpu_generate import build_random_pipeline
    from engine.models.registry import ModelRegistry

    root = tmp_path_factory.mktemp("sd15")
    build_random_pipeline("sd15", root / "sd15-random", torch.float16)
    manager = _manager()
    loaded = manager.load(ModelRegistry([root]).get("sd15-random"))
    yield loaded
    manager.unload()


def test_sd15_generate_and_uncertainty_512(sd15, tmp_path, fit_folder):
    from engine.fits import FitStore

    assert sd15.pipe.unet.config.sample_size * sd15.pipe.vae_scale_factor == 512
    _generate(sd15, tmp_path, sampler="DPM++ 2M", steps=10, cfg_scale=7.5)
    store = FitStore(tmp_path / "fits")
    _fit(sd15, "uncertainty", store, fit_folder, tmp_path)
    _uncertain(sd15, tmp_path, store, "DDIM")


def test_sd15_lovecon_16_frames_512(sd15):
    from diffusers import ControlNetModel

    torch.manual_seed(0)
    cn = ControlNetModel.from_unet(sd15.pipe.unet).to("cuda", torch.float16).eval()
    torch.cuda.reset_peak_memory_stats()
    _video(sd15, cn, 16, 512, "lovecon", steps=6)
    assert (
        torch.cuda.max_memory_allocated() < 0.9 * torch.cuda.get_device_properties(0).total_memory
    )
