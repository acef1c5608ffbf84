"""LoRAs under the fast path on CUDA (``pytest -m gpu``; skipped without a CUDA GPU): inductor
with CUDA graphs in float16 on the embedded model, LoRAs hotswapped into the resident slots
(engine/prompts/lora_slots.py). Switching LoRAs after the first LoRA job compiles no new graph,
and each image is the eager image of the same recipe (the same model loaded without a fast
path) within the fast path's float16 tolerance (tests/gpu/test_cuda.py). The CPU twin with
dynamo's CompileCounter is tests/engine/test_lora_hotswap.py.

    pytest -m gpu tests/gpu/test_lora_hotswap.py -q -s
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
    pytest.mark.timeout(900),
]


def _render(loaded, folder: Path, out: Path, tags: str = "") -> np.ndarray:
    from engine.generate import run_generate
    from engine.protocol import GenerateJob
    from tests.engine.test_catalogue import FakeContext, make_job

    size = loaded.pipe.unet.config.sample_size * loaded.pipe.vae_scale_factor
    job = make_job(
        GenerateJob(
            params={
                "prompt": f"a cat {tags}".strip(),
                "seed": 11,
                "cfg_scale": 5.0,
                "width": size,
                "height": size,
                "steps": 4,
                "sampler": "DPM++ 2M",
            }
        )
    )
    ctx = FakeContext(loaded, job, out)
    ctx.model_folders = [folder]
    run_generate(job, ctx, None)
    image = np.stack([np.asarray(Image.open(r.path), np.float32) for r in job.results])
    assert np.isfinite(image).all() and image.std() > 2, f"blank image: {tags}"
    return image


def test_lora_switches_compile_nothing_new_and_match_eager(tmp_path):
    from torch._dynamo.utils import counters

    from engine.fast_path import FastPath
    from engine.models.loader import ModelManager
    from engine.models.registry import ModelRegistry
    from tests.support.loras import write_kohya_lora, write_peft_lora

    info = ModelRegistry([]).get("sfumato-tiny")
    plain_manager = ModelManager("cuda", "fp16")
    plain = plain_manager.load(info)
    folder = tmp_path / "models"
    write_kohya_lora(plain.pipe, folder / "loras" / "ink.safetensors")
    write_peft_lora(plain.pipe, folder / "loras" / "paper.safetensors")
    write_kohya_lora(plain.pipe, folder / "loras" / "big.safetensors", seed=5, rank=16)

    torch._dynamo.reset()
    fast = FastPath(tmp_path / "cache", enabled=True, lora_rank=8, lora_slots=2)
    manager = ModelManager("cuda", "fp16", fast)
    loaded = manager.load(info)
    assert fast.wait(600) == "on", fast.message
    base = _render(loaded, folder, tmp_path)
    _render(loaded, folder, tmp_path, "<lora:ink:0.8>")  # installs the slots, runs eager
    assert fast.wait(600) == "on", fast.message
    graphs = counters["stats"]["unique_graphs"]
    sequence = [
        "<lora:paper:1>",
        "<lora:ink:0.8> <lora:paper:0.6>",
        "",
        "<lora:ink:0.8>",
        "<lora:ink:0>",
        "<lora:big:1>",
        "<lora:paper:1>",
        "",
    ]
    images = {tags: _render(loaded, folder, tmp_path, tags) for tags in sequence}
    assert counters["stats"]["unique_graphs"] == graphs, "a LoRA change compiled a new graph"
    assert "LoRA slots: 2 × rank 8" in fast.detail
    report = {}
    for tags, image in images.items():
        diff = np.abs(image - _render(plain, folder, tmp_path, tags))
        report[tags or "none"] = (round(float(diff.mean()), 3), float(diff.max()))
    print("LoRA images, compiled vs eager (mean, max in /255):", report)
    for tags, (mean, peak) in report.items():
        assert mean <= 1.5 and peak <= 24, (tags, mean, peak)
    assert np.abs(images[""] - base).mean() <= 0.5  # no LoRA after LoRA jobs: the base again
    manager.unload()
    plain_manager.unload()
    torch._dynamo.reset()
