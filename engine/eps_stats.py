"""Monte-Carlo statistics of a noise-prediction model on noised data, per timestep.

Both fits Sfumato makes for a model are expectations over q_t(x_t) = ∫ q(x_t|x_0) q_0(x_0):
Analytic-DPM's Γ_t = E‖ε̂(x_t, t)‖²/d (Bao et al. 2022, §3) and the calibration term
E[ε̂(x_t, t)] (Pang et al. 2023, eq. for the calibrated model ε̂ − E_{q_t}ε̂). One pass gives both.
Pure torch: the ``eps`` callable is the UNet in the engine and a closed form in the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

EpsFn = Callable[[torch.Tensor, int, slice], torch.Tensor]  # (x_t, t, rows of x0) → ε̂


@dataclass
class EpsStats:
    timesteps: list[int]
    gamma: torch.Tensor  # (T,) E‖ε̂‖²/d
    mean: torch.Tensor  # (T, C) E[ε̂] per channel (dim 1), averaged over the other dims
    samples_per_step: int
    spatial_mean: torch.Tensor | None = None  # (T, C, H, W) E[ε̂] per element (the official)


def estimate_eps_stats(
    eps: EpsFn,
    x0: torch.Tensor,
    timesteps: list[int],
    alphas_cumprod: torch.Tensor,
    *,
    samples_per_step: int | None = None,
    batch: int = 64,
    generator: torch.Generator | None = None,
    on_batch: Callable[[int, int], None] = lambda done, total: None,
) -> EpsStats:
    """For each t: draw x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε over ``samples_per_step`` of the x_0
    (cycled), and average ‖ε̂‖²/d and ε̂ (per channel, and per element C×H×W).

    ``eps(x_t, t, rows)`` returns ε̂ for a batch; ``rows`` says which x_0 it came from (for
    their captions). ``on_batch(done, total)`` is called after every batch (progress, cancel).
    """
    n = samples_per_step or len(x0)
    per_t = -(-n // batch)
    total, done = per_t * len(timesteps), 0
    gammas, means, spatial = [], [], []
    for t in timesteps:
        a = float(alphas_cumprod[t])
        sq_sum, mean_sum, elem_sum, seen = 0.0, None, None, 0
        for start in range(0, n, batch):
            stop = min(start + batch, n)
            idx = torch.arange(start, stop) % len(x0)
            x = x0[idx]
            noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(
                x.device, x.dtype
            )
            xt = a**0.5 * x + (1 - a) ** 0.5 * noise
            rows = slice(start, stop) if stop <= len(x0) else idx  # type: ignore[assignment]
            e = eps(xt, t, rows).float()
            sq_sum += e.flatten(1).pow(2).mean(1).sum().item()
            m = e.transpose(0, 1).flatten(1).mean(1) * len(e) if e.dim() > 1 else e.sum()
            mean_sum = m if mean_sum is None else mean_sum + m
            elem = e.sum(0)
            elem_sum = elem if elem_sum is None else elem_sum + elem
            seen += len(e)
            done += 1
            on_batch(done, total)
        gammas.append(sq_sum / seen)
        means.append((mean_sum / seen).cpu())
        spatial.append((elem_sum / seen).cpu())
    return EpsStats(
        list(timesteps),
        torch.tensor(gammas, dtype=torch.float64),
        torch.stack(means).double(),
        n,
        torch.stack(spatial).double(),
    )
