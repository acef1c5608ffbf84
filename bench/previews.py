"""What a preview costs: the real VAE decode vs the linear projection (issue 14 item 3).

    python bench/previews.py [-n 20] [--threads N]

Times, per preview of one image: the built-in model's VAE decode of its 16×16 latent (a 64×64
image), and the linear projection with bilinear upsampling; then the same for a Stable
Diffusion 1.5 VAE built from its config (random weights time exactly like real ones) at 512×512
(a 64×64 latent). PNG encoding included, as sent to the app. Also prints the rule's choice
(engine/previews.py: decode when the estimate is within DECODE_BUDGET_S). Median and range.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(fn, n: int) -> dict[str, float]:
    fn()  # warm-up
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {
        "median_ms": round(1000 * statistics.median(times), 2),
        "min_ms": round(1000 * min(times), 2),
        "max_ms": round(1000 * max(times), 2),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=20)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--sd", action="store_true", help="also time an SD 1.5 VAE at 512×512")
    args = p.parse_args()
    import torch
    from diffusers import AutoencoderKL

    from engine.previews import DECODE_BUDGET_S, LatentPreviewer

    if args.threads:
        torch.set_num_threads(args.threads)
    result = {
        "torch_threads": torch.get_num_threads(),
        "load_avg": os.getloadavg()[0],
        "budget_ms": DECODE_BUDGET_S * 1000,
    }
    cases = [
        (
            "sfumato-tiny",
            AutoencoderKL.from_pretrained(REPO / "resources/models/sfumato-tiny/vae"),
            16,
        )
    ]
    if args.sd:
        config = AutoencoderKL.load_config(REPO / "resources/configs/sd15/vae")
        cases.append(("sd15 (random weights)", AutoencoderKL.from_config(config), 64))
    for name, vae, side in cases:
        vae.eval()
        pv = LatentPreviewer.fit(vae, "cpu", torch.float32)
        z = torch.randn(vae.config.latent_channels, side, side)
        budget = pv.budget_s
        pv.budget_s = 1e9
        decode = timed(lambda pv=pv, z=z: pv.png_b64(z), args.n)
        pv.budget_s = 0.0
        linear = timed(lambda pv=pv, z=z: pv.png_b64(z), args.n)
        pv.budget_s = budget
        result[name] = {
            "latent": f"{side}×{side}",
            "image": f"{side * pv.scale_factor}px",
            "vae_decode_preview": decode,
            "linear_bilinear_preview": linear,
            "rule_estimate_ms": round(1000 * pv.decode_s_per_latent_px * side * side, 1),
            "rule_uses_vae": pv.uses_vae(side, side),
        }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
