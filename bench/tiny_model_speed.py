"""Seconds per image of the embedded model: one 64x64 image, 25 steps, classifier-free guidance.

Plain diffusers ``StableDiffusionPipeline`` on the shipped folder, so the number is what the
engine pays (the engine adds no work per step). The target on a 2-core laptop CPU is <= 2 s.

``--preset NAME`` times an architecture of ``engine/training/components.PRESETS`` before it is
trained: the shipped tokenizer and scheduler around a text encoder, VAE and UNet of that size
with random weights (a step costs the same whatever the weights).

    python bench/tiny_model_speed.py [--threads 2] [--runs 10] [--device cpu] [--preset wide]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def random_pipeline(model: Path, preset: str):
    """``model``'s tokenizer and scheduler with a random text encoder, VAE and UNet of
    ``preset``'s size: what a trained model of that size costs per step."""
    import torch
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline
    from transformers import CLIPTokenizer

    sys.path.insert(0, str(REPO))
    from engine.training import components

    torch.manual_seed(0)
    size = components.PRESETS[preset]
    tok = CLIPTokenizer.from_pretrained(model / "tokenizer")
    text = components.text_encoder(size, len(tok), tok.bos_token_id, tok.eos_token_id)
    vae = components.vae(size, 64)
    latent = 64 // 2 ** (len(size.vae_channels) - 1)
    return StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text.eval(),
        tokenizer=tok,
        unet=components.unet(size, latent).eval(),
        scheduler=DPMSolverMultistepScheduler(**components.scheduler_config()),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=REPO / "resources" / "models" / "sfumato-tiny")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance", type=float, default=5.0)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--preset",
        default=None,
        help="time this components.PRESETS size with random weights instead",
    )
    args = p.parse_args()

    import torch
    from diffusers import StableDiffusionPipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if args.preset:
        pipe = random_pipeline(args.model, args.preset).to(args.device)
    else:
        pipe = StableDiffusionPipeline.from_pretrained(
            args.model, local_files_only=True, torch_dtype=torch.float32
        ).to(args.device)
    load_s = time.perf_counter() - t0
    pipe.set_progress_bar_config(disable=True)

    def once(seed: int) -> float:
        t = time.perf_counter()
        pipe(
            "cat face, noto style, on a blue background",
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
            height=64,
            width=64,
            generator=torch.Generator().manual_seed(seed),
        )
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
        "weights": f"random, preset {args.preset}" if args.preset else str(args.model.name),
        "torch": torch.__version__,
    }
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
