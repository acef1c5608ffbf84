"""Calibration's spatial (C×H×W, the official) mean against the per-channel one, with a bias
that varies over positions and averages to zero in every channel — which the per-channel mean
cannot see — for ε- and v-prediction.

Data: x₀ ~ N(0, I) per element, so q_t = N(0, I) and the exact ε*(x_t, t) = √(1−ᾱ_t) x_t."""

from __future__ import annotations

import torch

from engine.calibration import CalibrationTable, calibrate_output
from engine.eps_stats import estimate_eps_stats
from tests.engine.gaussian import alphas_cumprod

AC = alphas_cumprod()
SHAPE = (2, 4, 4)
TS = [0, 250, 500, 750, 999]


def _bias() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    b = torch.randn(SHAPE, generator=g, dtype=torch.float64) * 0.2
    return b - b.mean((1, 2), keepdim=True)  # zero per channel: only the spatial mean sees it


BIAS = _bias()


def eps_biased(x: torch.Tensor, t: float) -> torch.Tensor:
    return (1 - float(AC[int(t)])) ** 0.5 * x + BIAS.to(x)


def v_biased(x: torch.Tensor, t: float) -> torch.Tensor:
    """The v-prediction model whose ε is ``eps_biased``: v = (ε − √(1−ᾱ) x_t)/√ᾱ."""
    a = float(AC[int(t)])
    return (eps_biased(x, t) - (1 - a) ** 0.5 * x) / a**0.5


def _table(mode: str) -> CalibrationTable:
    x0 = torch.randn(3000, *SHAPE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    stats = estimate_eps_stats(
        lambda x, t, rows: eps_biased(x, t),
        x0,
        TS,
        AC,
        batch=1000,
        generator=torch.Generator().manual_seed(3),
    )
    assert stats.spatial_mean.shape == (len(TS), *SHAPE)
    return CalibrationTable(
        torch.tensor(TS), stats.mean, stats.mean, stats.spatial_mean, stats.spatial_mean, mode
    )


def test_spatial_mean_finds_a_bias_the_channel_mean_cannot():
    table = _table("spatial")
    # per element ≈ the bias (Monte-Carlo error ~ 1/√3000 ≈ 0.02)
    assert (table.spatial_cond - BIAS).abs().max() < 0.08
    assert table.mean_cond.abs().max() < 0.03  # per channel the bias averages out


def test_spatial_calibration_removes_the_bias_for_eps_and_v():
    x = torch.randn(8, *SHAPE, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for mode, removed in (("spatial", True), ("channel", False)):
        table = _table(mode)
        for t in (250, 500, 750):
            a = float(AC[t])
            exact_eps = (1 - a) ** 0.5 * x
            out = calibrate_output(eps_biased(x, t), t, table, cfg=False)
            err = (out - exact_eps).abs().max()
            assert (err < 0.08) == removed, (mode, t, float(err))
            # v-prediction: the same bias in ε is m/√ᾱ in v
            exact_v = (exact_eps - (1 - a) ** 0.5 * x) / a**0.5
            out_v = calibrate_output(
                v_biased(x, t),
                t,
                table,
                cfg=False,
                prediction_type="v_prediction",
                alphas_cumprod=AC,
            )
            err_v = (out_v - exact_v).abs().max()
            assert (err_v < 0.08 / a**0.5) == removed, (mode, t, float(err_v))


def test_spatial_mean_falls_back_to_the_channel_mean_at_another_size():
    table = CalibrationTable(
        torch.tensor([0, 999]),
        torch.ones(2, 2),
        torch.ones(2, 2),
        torch.full((2, 2, 4, 4), 5.0),
        torch.full((2, 2, 4, 4), 5.0),
    )

    def out(h):
        return calibrate_output(torch.zeros(1, 2, h, h), 10.0, table, cfg=False)

    assert torch.allclose(out(4), torch.tensor(-5.0))
    assert torch.allclose(out(8), torch.tensor(-1.0))  # not the fitted size: per channel
    table.mode = "channel"
    assert torch.allclose(out(4), torch.tensor(-1.0))


def test_spatial_calibration_with_cfg_uses_each_halfs_mean():
    table = CalibrationTable(
        torch.tensor([0, 999]),
        torch.zeros(2, 2),
        torch.zeros(2, 2),
        torch.ones(2, 2, 3, 3),
        -torch.ones(2, 2, 3, 3),
    )
    out = calibrate_output(torch.zeros(4, 2, 3, 3), 10.0, table, cfg=True)
    assert torch.allclose(out[:2], torch.tensor(1.0)) and torch.allclose(
        out[2:], torch.tensor(-1.0)
    )
