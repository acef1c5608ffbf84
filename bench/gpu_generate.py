"""Sfumato engine vs plain diffusers, same model, same run: seconds per image and peak memory.

The model is Stable Diffusion 1.5 (or SDXL) *architecture* built from the configs in
``resources/configs/<arch>`` with random weights — it times exactly like the real weights — saved
as a diffusers folder so that the engine loads it through its real registry and loader.

    python bench/gpu_generate.py                       # SD 1.5 arch, 512², 25 steps, CFG 7.5
    python bench/gpu_generate.py --arch sdxl --size 1024
    python bench/gpu_generate.py --model-dir PATH --device cpu --size 64 --steps 10   # smoke run

Prints a table: plain diffusers and the engine (submit → image on disk, via HTTP, queue and
PNG writing) at batch 1 and 4, and the engine's overhead. Target (issue 3): overhead ≤ 5 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def build_random_pipeline(arch: str, out: Path, dtype) -> Path:
    """Random-weight pipeline of ``arch`` from our bundled configs, saved to ``out``."""
    import torch
    from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = REPO / "resources" / "configs" / arch
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(cfg / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(cfg / "vae"))
        te = CLIPTextModel(CLIPTextConfig.from_pretrained(cfg / "text_encoder"))
        parts = {"unet": unet, "vae": vae, "text_encoder": te}
        if (cfg / "text_encoder_2").is_dir():
            parts["text_encoder_2"] = CLIPTextModelWithProjection(
                CLIPTextConfig.from_pretrained(cfg / "text_encoder_2")
            )
    pipe = DiffusionPipeline.from_pretrained(
        cfg, **parts, local_files_only=True, safety_checker=None, requires_safety_checker=False
    )
    pipe.to(dtype=dtype).save_pretrained(out, safe_serialization=True)
    return out


def plain_diffusers(model_dir: Path, device: str, args, batch: int) -> dict:
    import torch
    from diffusers import DiffusionPipeline

    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    pipe = DiffusionPipeline.from_pretrained(model_dir, torch_dtype=dtype, local_files_only=True)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    def run():
        gens = [torch.Generator("cpu").manual_seed(i) for i in range(batch)]
        t = time.perf_counter()
        pipe(
            "a photo of a cat",
            width=args.size,
            height=args.size,
            num_inference_steps=args.steps,
            guidance_scale=args.cfg,
            num_images_per_prompt=batch,
            generator=gens,
        )
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t

    run()  # warm-up
    times = [run() / batch for _ in range(args.repeats)]
    peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else 0
    pipe = None  # release the weights before the next variant loads (run() closes over it)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return {"s_per_image": statistics.median(times), "peak": peak}


async def sfumato_engine(model_dir: Path, device: str, args, batch: int) -> dict:
    import aiohttp

    from tests.support.engine_proc import EngineProcess

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        engine = EngineProcess(
            data, model_dir.parent, extra_args=["--model", model_dir.name, "--device", device]
        ).start()
        try:
            async with aiohttp.ClientSession() as s:
                ws = await s.ws_connect(f"{engine.url}/v1/events?token={engine.token}")
                params = {
                    "prompt": "a photo of a cat",
                    "width": args.size,
                    "height": args.size,
                    "steps": args.steps,
                    "cfg_scale": args.cfg,
                    "sampler": "Euler",
                    "batch_size": batch,
                    "seed": 0,
                }
                times = []
                for i in range(args.repeats + 1):  # the first loads the model: not counted
                    t = time.perf_counter()
                    async with s.post(
                        f"{engine.url}/v1/jobs",
                        headers=engine.headers,
                        json={"job": {"kind": "generate", "params": params}},
                    ) as r:
                        job = await r.json()
                    while True:
                        msg = json.loads((await ws.receive()).data)
                        if msg["type"] == "finished" and msg["job"]["id"] == job["id"]:
                            assert msg["job"]["state"] == "done", msg["job"]["message"]
                            break
                    if i:
                        times.append((time.perf_counter() - t) / batch)
                async with s.get(f"{engine.url}/v1/health", headers=engine.headers) as r:
                    health = await r.json()
        finally:
            engine.stop()
    return {"s_per_image": statistics.median(times), "peak": health["memory_peak"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="sd15", choices=["sd15", "sd2", "sdxl"])
    ap.add_argument("--model-dir", type=Path, help="use this diffusers folder instead")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--cfg", type=float, default=7.5)
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir
        if model_dir is None:
            dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
            model_dir = build_random_pipeline(args.arch, Path(tmp) / f"{args.arch}-random", dtype)
        rows = []
        for batch in (int(b) for b in args.batches.split(",")):
            plain = plain_diffusers(model_dir, args.device, args, batch)
            ours = asyncio.run(sfumato_engine(model_dir, args.device, args, batch))
            rows.append((batch, plain, ours))

    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
    print(
        f"\n{args.arch if not args.model_dir else model_dir.name}, {args.size}², {args.steps} "
        f"steps, CFG {args.cfg}, {gpu}, median of {args.repeats}"
    )
    print("| batch | diffusers s/img | Sfumato s/img | overhead | diffusers peak | Sfumato peak |")
    print("|---|---|---|---|---|---|")
    for batch, plain, ours in rows:
        over = ours["s_per_image"] / plain["s_per_image"] - 1
        print(
            f"| {batch} | {plain['s_per_image']:.3f} | {ours['s_per_image']:.3f} | "
            f"{over:+.1%} | {plain['peak'] / 2**30:.2f} GiB | {ours['peak'] / 2**30:.2f} GiB |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
