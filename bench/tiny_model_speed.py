"""Seconds per image of the embedded model: one 64x64 image, 25 steps, classifier-free guidance.

Plain diffusers ``StableDiffusionPipeline`` on the shipped folder, so the number is what the
engine pays (the engine adds no work per step). The target on a 2-core laptop CPU is <= 2 s.

    python bench/tiny_model_speed.py [--threads 2] [--runs 10] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=REPO / "resources" / "models" / "sfumato-tiny")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance", type=float, default=5.0)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    import torch
    from diffusers import StableDiffusionPipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(args.model, local_files_only=True).to(args.device)
    load_s = time.perf_counter() - t0
    pipe.set_progress_bar_config(disable=True)

    def once(seed: int) -> float:
        t = time.perf_counter()
        pipe("cat face, noto style, on a blue background", num_inference_steps=args.steps,
             guidance_scale=args.guidance, height=64, width=64,
             generator=torch.Generator().manual_seed(seed))
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t

    once(0)  # warm-up: first call allocates and picks kernels
    times = [once(i + 1) for i in range(args.runs)]
    result = {
        "seconds_per_image_median": round(statistics.median(times), 3),
        "seconds_per_image_min": round(min(times), 3),
        "seconds_per_image_max": round(max(times), 3),
        "steps": args.steps,
        "guidance_scale": args.guidance,
        "size": "64x64",
        "load_seconds": round(load_s, 2),
        "threads": torch.get_num_threads(),
        "device": args.device,
        "torch": torch.__version__,
    }
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
