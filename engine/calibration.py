"""Calibrated noise prediction (Pang, Lu, Du, Lin, Yan, Deng; NeurIPS 2023).

The true score has zero mean under q_t for every t (the paper's Theorem: α_t∇log q_t(x_t) is a
reverse-time martingale, so E_{q_t}∇log q_t = 0), while a trained ε̂ need not. The calibrated
model ε̂(x_t, t) − E_{q_t}[ε̂(x_t, t)] has lower score-matching loss. The mean is estimated on
a grid of timesteps and interpolated linearly in t, so one fit serves every sampler and step
count. Two forms of the mean: ``spatial`` — per element, C×H×W, as the official code
(thu-ml/Calibrated-DPMs) keeps it, the default — and ``channel`` — per channel, averaged over
positions, which also serves other resolutions. The spatial mean applies only to latents of
the size it was fitted at; at any other size the per-channel mean is used (it is the spatial
mean's average over positions). It is applied as a named hook on the UNet's output
(engine/hooks.py) for the duration of a pipeline call, which is what makes it work with every
scheduler, and leaves a compiled UNet (engine/fast_path.py) compiled.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from engine.denoisers import Prediction, alpha_sigma, eps_shift_as_output


@dataclass
class CalibrationTable:
    timesteps: torch.Tensor  # (T,) increasing
    mean_cond: torch.Tensor  # (T, C) E[ε̂(x_t, t, c)] over captioned data
    mean_uncond: torch.Tensor  # (T, C) E[ε̂(x_t, t, ∅)]
    spatial_cond: torch.Tensor | None = None  # (T, C, H, W), the same per element
    spatial_uncond: torch.Tensor | None = None
    mode: str = "spatial"  # "spatial" (official) or "channel"

    def spatial_fits(self, hw: tuple[int, int] | None) -> bool:
        """Whether the spatial mean is used for latents of height × width ``hw``."""
        return (
            self.mode == "spatial"
            and self.spatial_cond is not None
            and hw is not None
            and tuple(self.spatial_cond.shape[-2:]) == tuple(hw)
        )

    def mean_at(
        self, t: float, which: str = "cond", hw: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """The mean at (possibly fractional) timestep ``t``, linear in between: (C, H, W) where
        :meth:`spatial_fits` ``hw``, else (C,)."""
        if self.spatial_fits(hw):
            table = self.spatial_cond if which == "cond" else self.spatial_uncond
        else:
            table = self.mean_cond if which == "cond" else self.mean_uncond
        ts = self.timesteps.double()
        t = min(max(float(t), float(ts[0])), float(ts[-1]))
        j = int(torch.searchsorted(ts, torch.tensor(t, dtype=torch.float64)).clamp(1, len(ts) - 1))
        w = (t - float(ts[j - 1])) / max(float(ts[j] - ts[j - 1]), 1e-12)
        return (1 - w) * table[j - 1] + w * table[j]


def _abar_at(alphas_cumprod: torch.Tensor, t: float) -> float:
    lo = int(min(max(int(t), 0), len(alphas_cumprod) - 1))
    hi = min(lo + 1, len(alphas_cumprod) - 1)
    w = float(t) - lo
    return float((1 - w) * alphas_cumprod[lo] + w * alphas_cumprod[hi])


def calibrate_output(
    out: torch.Tensor,
    t: float,
    table: CalibrationTable,
    *,
    cfg: bool,
    prediction_type: str = "epsilon",
    alphas_cumprod: torch.Tensor | None = None,
) -> torch.Tensor:
    """Subtract the mean of ε̂ from a batch of model outputs. With CFG the batch is
    [unconditional; conditional] halves (diffusers' order) and each half gets its own mean.
    A v-prediction model's v̂ shifts by m/√ᾱ_t, since ε̂ = √ᾱ v̂ + √(1−ᾱ) x_t, an x₀-model's
    x̂₀ by −m·√(1−ᾱ_t)/√ᾱ_t (engine.denoisers.eps_shift_as_output). The mean is the
    table's spatial one where it fits the output's size, else the per-channel one."""
    hw = tuple(out.shape[-2:]) if out.dim() == 4 else None
    spatial = table.spatial_fits(hw)
    shape = (1, *out.shape[1:]) if spatial else (1, -1) + (1,) * (out.dim() - 2)
    m_c = table.mean_at(t, "cond", hw).to(out.device, out.dtype).view(shape)
    if cfg and len(out) % 2 == 0:
        m_u = table.mean_at(t, "uncond", hw).to(out.device, out.dtype).view(shape)
        half = len(out) // 2
        m = torch.cat([m_u.expand(half, *m_u.shape[1:]), m_c.expand(half, *m_c.shape[1:])])
    else:
        m = m_c
    if prediction_type != Prediction.EPSILON:
        assert alphas_cumprod is not None
        m = eps_shift_as_output(prediction_type, m, *alpha_sigma(_abar_at(alphas_cumprod, t)))
    return out - m


@contextlib.contextmanager
def calibrated(
    unet,
    table: CalibrationTable,
    *,
    cfg: bool,
    prediction_type: str = "epsilon",
    alphas_cumprod: torch.Tensor | None = None,
) -> Iterator[None]:
    """Within the block, ``unet(...)`` returns the calibrated prediction. Attached as the named
    UNet hook "calibration" (engine/hooks.py), after the forward: a compiled UNet stays
    compiled."""
    from engine.hooks import unet_hook

    def fix(out, _sample, timestep):
        t = float(torch.as_tensor(timestep).flatten()[0])

        def shift(x: torch.Tensor) -> torch.Tensor:
            return calibrate_output(
                x, t, table, cfg=cfg, prediction_type=prediction_type, alphas_cumprod=alphas_cumprod
            )

        if isinstance(out, tuple):
            return (shift(out[0]), *out[1:])
        out.sample = shift(out.sample)
        return out

    with unet_hook(unet, "calibration", fix):
        yield
