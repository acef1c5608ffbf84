"""Propagated Var[x₀] against two Monte-Carlo ground truths on the embedded model.

- ``shared``: one conv_out weight draw per sampling run (what a user's "the model might be
  these weights" means; the test in tests/engine/test_uncertainty_propagation.py);
- ``per-call``: a fresh draw at every UNet call (the process BayesDiff's equations assume:
  each step's weight error independent of the last).

Prints the ratio of total variances and the per-element correlation of the two maps, for DDIM
and DPM2 at k = 1 and k = 5 (6 steps, CFG 5, S = 8).

    python bench/uncertainty_agreement.py --draws 32
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=32)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    import tests.engine.test_uncertainty_propagation as T
    from engine.uncertainty.laplace import sample_weights

    torch.set_num_threads(args.threads)
    pipe, post, model = T.setup.__wrapped__()
    conv = pipe.unet.conv_out
    w0, b0 = conv.weight.data.clone(), conv.bias.data.clone()

    def per_call(name: str) -> torch.Tensor:
        g = torch.Generator().manual_seed(3)

        def redraw(m, _args):
            w, b = sample_weights(w0, b0, post, g)
            m.weight.data.copy_(w)
            m.bias.data.copy_(b)

        hook = conv.register_forward_pre_hook(redraw)
        outs = []
        try:
            for _ in range(args.draws):
                pipe.scheduler = T._scheduler(pipe, name)
                outs.append(pipe(T.PROMPT, num_inference_steps=args.steps, guidance_scale=T.CFG,
                                 width=64, height=64, generator=torch.Generator().manual_seed(1),
                                 output_type="latent").images)
        finally:
            hook.remove()
            conv.weight.data.copy_(w0)
            conv.bias.data.copy_(b0)
        return torch.cat(outs).var(0, keepdim=True)

    def shared(name: str) -> torch.Tensor:
        pipe.scheduler = T._scheduler(pipe, name)
        return T._monte_carlo(pipe, post, args.steps, args.draws)

    print("| sampler | k | ground truth | ratio (propagated ÷ MC) | per-element correlation |")
    print("|---|---|---|---|---|")
    for name in ("DDIM", "DPM2"):
        for skip in (1, 5):
            prop, _ = T._propagate(pipe, model, name, args.steps, 8, skip)
            for label, mc_of in (("shared", shared), ("per-call", per_call)):
                t0 = time.monotonic()
                mc = mc_of(name)
                ratio = float(prop.var.mean() / mc.mean())
                corr = float(torch.corrcoef(torch.stack([prop.var.flatten(), mc.flatten()]))[0, 1])
                print(f"| {name} | {skip} | {label} | {ratio:.3f} | {corr:.3f} |  "
                      f"<!-- {time.monotonic() - t0:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
