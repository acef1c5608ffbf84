"""Propagated Var[x₀] against the Monte-Carlo ground truth on the embedded model.

Ground truth: one conv_out weight draw from the Laplace posterior per sampling run, the real
diffusers pipeline, the empirical variance of the final latents (what "the model might be these
weights" means; tests/engine/test_uncertainty_propagation.py asserts the S = 32 rows). Printed:
how well two independent halves of the Monte-Carlo runs agree with each other (the ceiling), then
for DDIM and DPM2, k = 1 and 5, S = 5 (the default) and 32, the ratio of total variances and the
per-element correlation of the maps for four particle seeds.

    python bench/uncertainty_agreement.py --draws 64 --steps 10
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _corr(a, b) -> float:
    import torch

    return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch

    import tests.engine.test_uncertainty_propagation as T

    torch.set_num_threads(args.threads)
    pipe, post, model = T.setup.__wrapped__()
    rows = []
    print("| sampler | k | S | ratio (propagated ÷ MC), per seed | correlation, per seed |")
    print("|---|---|---|---|---|")
    for name in ("DDIM", "DPM2"):
        pipe.scheduler = T._scheduler(pipe, name)
        runs = T._monte_carlo_runs(pipe, post, args.steps, args.draws)
        half = args.draws // 2
        a, b = runs[:half].var(0, keepdim=True), runs[half:].var(0, keepdim=True)
        mc = runs.var(0, keepdim=True)
        ceiling = {"ratio": float(b.mean() / a.mean()), "corr": _corr(a, b)}
        print(
            f"| {name} | — | MC {half} vs MC {half} | {ceiling['ratio']:.2f} | "
            f"{ceiling['corr']:.2f} |",
            flush=True,
        )
        for skip in (1, 5):
            for samples in (5, 32):
                got = []
                for seed in range(args.seeds):
                    prop, _ = T._propagate(pipe, model, name, args.steps, samples, skip, seed=seed)
                    got.append((float(prop.var.mean() / mc.mean()), _corr(prop.var, mc)))
                rows.append(
                    {
                        "sampler": name,
                        "skip": skip,
                        "samples": samples,
                        "ratio": [r for r, _ in got],
                        "corr": [c for _, c in got],
                        "ceiling": ceiling,
                    }
                )
                print(
                    f"| {name} | {skip} | {samples} | "
                    + " ".join(f"{r:.2f}" for r, _ in got)
                    + " | "
                    + " ".join(f"{c:.2f}" for _, c in got)
                    + " |",
                    flush=True,
                )
    if args.json:
        args.json.write_text(
            json.dumps({"draws": args.draws, "steps": args.steps, "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
