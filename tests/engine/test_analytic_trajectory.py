"""Analytic-DPM's optimal trajectory (Bao et al. 2022, §4) on Gaussian data, where each step's
term of the variational bound is known in closed form.

x₀ ~ N(μ, Σ) (tests/engine/gaussian.py): the exact ε* gives Γ_t = (1−ᾱ_t)·tr C_t⁻¹/d, and the
step s → t with the exact mean and the optimal isotropic variance contributes

    KL = (d/2)·log(σ*² / λ²),   σ*² = λ² + c²·tr Cov(x₀|x_t)/d,   c = √ᾱ_s − √(β̄_s − λ²)·√(ᾱ_t/β̄_t)

(λ² the DDPM posterior variance of the step). That closed form, written here from the Gaussian
posterior and not from the scheduler's code, is what the trajectories are scored by."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from engine.schedulers.analytic_dpm import (
    AnalyticDPMScheduler,
    candidate_grid,
    optimal_trajectory,
    trajectory_bound,
)
from tests.engine.gaussian import CONFIG, D, alphas_cumprod, exact_gamma, posterior_cov_trace

AC = alphas_cumprod()


def exact_step_kl(s: int, t: int) -> float:
    """E_q KL(q(x_s | x_t, x₀) ‖ p*(x_s | x_t)) per the Gaussian posterior, for s < t."""
    a_s, a_t = float(AC[s]), float(AC[t])
    lam2 = (1 - a_s) / (1 - a_t) * (1 - a_t / a_s)  # η = 1
    c = math.sqrt(a_s) - math.sqrt(1 - a_s - lam2) * math.sqrt(a_t / (1 - a_t))
    sigma2 = lam2 + c**2 * posterior_cov_trace(a_t)
    return D / 2 * math.log(sigma2 / lam2)


def exact_total(timesteps) -> float:
    ts = sorted(timesteps)
    return sum(exact_step_kl(s, t) for s, t in itertools.pairwise(ts))


def gammas_on(grid):
    return {t: exact_gamma(t, AC) for t in grid}


def even(grid, k):
    """K points of the grid, evenly spaced by index, both ends kept."""
    idx = sorted({round(i * (len(grid) - 1) / (k - 1)) for i in range(k)})
    return [grid[i] for i in idx]


@pytest.mark.parametrize("k", [3, 4, 5])
def test_dp_equals_brute_force_on_a_small_grid(k):
    grid = candidate_grid(1000, 12)
    assert grid[0] == 0 and grid[-1] == 999 and len(grid) == 12
    dp = optimal_trajectory(AC, gammas_on(grid), k)
    assert len(dp) == k and dp == sorted(dp, reverse=True)
    assert dp[0] == 999 and dp[-1] == 0
    best = min(
        (exact_total((0, *mid, 999)), (0, *mid, 999))
        for mid in itertools.combinations(grid[1:-1], k - 2)
    )
    assert exact_total(dp) == pytest.approx(best[0], rel=1e-9)
    assert sorted(dp) == list(best[1])


@pytest.mark.parametrize("k", [5, 10, 25])
def test_dp_bound_is_at_most_the_even_schedules(k):
    grid = candidate_grid(1000, 100)
    gammas = gammas_on(grid)
    dp = optimal_trajectory(AC, gammas, k)
    assert exact_total(dp) <= exact_total(even(grid, k)) + 1e-12

    # the scheduler's own cost ranks trajectories like the closed form: the same sum up to the
    # terms that telescope (log β̄_t/ᾱ_t at the two ends, the same for every trajectory)
    def telescoped(ts):
        return exact_total(ts) / (D / 2) - trajectory_bound(AC, gammas, ts)

    assert telescoped(dp) == pytest.approx(telescoped(even(grid, k)), abs=1e-9)


def test_scheduler_samples_on_the_cached_trajectory():
    grid = candidate_grid(1000, 20)
    traj = optimal_trajectory(AC, gammas_on(grid), 6)
    sched = AnalyticDPMScheduler(**CONFIG, timestep_spacing="optimal")
    sched.set_gammas(gammas_on(grid))
    with pytest.raises(KeyError, match="optimal"):
        sched.set_timesteps(6)
    sched.set_trajectories({6: traj})
    sched.set_timesteps(6)
    assert sched.timesteps.tolist() == traj and not sched.missing_gammas()
    x = torch.randn(4, D, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for t in sched.timesteps:
        x = sched.step(
            torch.zeros_like(x), t, x, generator=torch.Generator().manual_seed(1)
        ).prev_sample
    assert torch.isfinite(x).all()


def test_estimates_above_one_at_the_top_are_spaced_evenly_as_the_official_code():
    """Γ > 1 is impossible for the true value (Monte-Carlo noise near T): the official _split
    sets aside twice as many top candidates and spaces part of the steps evenly there."""
    grid = candidate_grid(1000, 20)
    gammas = gammas_on(grid)
    gammas[grid[-1]] = 1.01  # the top estimate overshoots
    traj = optimal_trajectory(AC, gammas, 6)
    assert len(traj) == 6 and traj[0] == 999 and traj[-1] == 0
    assert all(a > b for a, b in itertools.pairwise(traj))
    # the DP part ends at the last trusted candidate, below the two set aside
    rest = [t for t in traj if t < grid[-2]]
    assert rest == optimal_trajectory(AC, {t: gammas[t] for t in grid[:-2]}, len(rest))
