"""Analytic-DPM (Bao, Li, Zhu, Zhang, ICLR 2022): the optimal reverse variance in closed form.

Notation of the paper (arXiv:2201.06503), discrete time: ᾱ_n = ∏(1−β_i), β̄_n = 1 − ᾱ_n, and on
a sampling trajectory τ_K > … > τ_1 the step n → s (s the previous trajectory point, ᾱ_s = 1
after the last one) has α_{n|s} = ᾱ_n / ᾱ_s. The reverse kernels of the DDPM/DDIM family (§2, the generalised q_λ of DDIM):

    q_λ(x_s | x_n, x_0) = N( √ᾱ_s x_0 + √(β̄_s − λ_n²) · (x_n − √ᾱ_n x_0)/√β̄_n ,  λ_n² I )

with λ_n² = η² · β̄_s/β̄_n · (1 − α_{n|s}) (η = 1: DDPM's posterior variance; η = 0: DDIM).
Theorem 1 gives the optimal mean (x_0 replaced by Tweedie's estimate from ε̂) and the optimal
variance, which with an ε-model (∇log q_n ≈ −ε̂/√β̄_n) reads

    σ*_n² = λ_n² + (√(β̄_n/α_{n|s}) − √(β̄_s − λ_n²))² · (1 − Γ_n),   Γ_n = E_{q_n}‖ε̂(x_n, n)‖²/d

(Γ_n is estimated once per model by Monte-Carlo on noised data, §3). Theorem 2 bounds it
(the second bound when the data lie in [a, b]^d):

    λ_n² ≤ σ*_n² ≤ λ_n² + (√(β̄_n/α_{n|s}) − √(β̄_s − λ_n²))²
    σ*_n² ≤ λ_n² + (√ᾱ_s − √(β̄_s − λ_n²) · √(ᾱ_n/β̄_n))² · ((b − a)/2)²

and the estimate is clipped to them. η = 1 is Analytic-DDPM, η = 0 Analytic-DDIM (stochastic:
the optimal variance is added on top of DDIM's mean). The last step returns the mean.

Timesteps use diffusers' indexing: timestep t is the paper's n = t + 1.

**Optimal trajectory** (§4, the official ``_solve_fn_dp``): with the optimal variance, the
variational bound over a trajectory 0 = τ_1 < … < τ_K = top is a constant plus
Σ_k J(τ_{k−1}, τ_k), where per dimension

    J(s, t) = ½ · log(1 − β_{t|s} · Γ_t / β̄_t),      β_{t|s} = 1 − ᾱ_t/ᾱ_s

(it is ½ log(σ*²/λ²) of the step, up to terms that telescope over any trajectory). Dynamic
programming over a grid of fitted timesteps finds the K-point trajectory that minimises the sum
(:func:`optimal_trajectory`); the ``analytic_fit`` with ``timestep_spacing = "optimal"`` fits Γ
on :func:`candidate_grid` and caches the trajectory of each asked step count with the fit.
Γ_t is clipped to [0, 1] in the cost as in the variance, and where estimates exceed 1 (noise near
t = T) the top of the grid is spaced evenly instead, as the official ``_split`` does.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import ClassVar

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin, SchedulerOutput

from engine.denoisers import to_eps, x0_from_eps


def betas_for(config) -> torch.Tensor:
    """The training β schedule named in a diffusers scheduler config."""
    n = config.num_train_timesteps
    if config.trained_betas is not None:
        return torch.tensor(config.trained_betas, dtype=torch.float64)
    if config.beta_schedule == "linear":
        return torch.linspace(config.beta_start, config.beta_end, n, dtype=torch.float64)
    if config.beta_schedule == "scaled_linear":
        return (
            torch.linspace(config.beta_start**0.5, config.beta_end**0.5, n, dtype=torch.float64)
            ** 2
        )
    if config.beta_schedule == "squaredcos_cap_v2":
        f = [math.cos((i / n + 0.008) / 1.008 * math.pi / 2) ** 2 for i in range(n + 1)]
        return torch.tensor(
            [min(1 - f[i + 1] / f[i], 0.999) for i in range(n)], dtype=torch.float64
        )
    raise NotImplementedError(f"beta_schedule {config.beta_schedule!r} is not supported")


def trajectory(num_train: int, steps: int, spacing: str = "leading", offset: int = 0) -> list[int]:
    """Decreasing timesteps τ_K … τ_1, spaced as diffusers' DDIM spaces them."""
    if not 1 <= steps <= num_train:
        raise ValueError(f"steps must be 1..{num_train}")
    if spacing == "linspace":
        ts = torch.linspace(0, num_train - 1, steps).round().long().flip(0)
    elif spacing == "leading":
        ratio = num_train // steps
        ts = (torch.arange(steps) * ratio).round().long().flip(0) + offset
    elif spacing == "trailing":
        ts = (torch.arange(num_train, 0, -num_train / steps).round() - 1).long()
    else:
        raise ValueError(f"unknown timestep_spacing {spacing!r}")
    return [min(int(t), num_train - 1) for t in ts]


#: The ``timestep_spacing`` that asks for the optimal trajectory (Analytic-DPM samplers only).
OPTIMAL = "optimal"


def candidate_grid(num_train: int, points: int = 100) -> list[int]:
    """Increasing timesteps the optimal trajectory chooses from: ``points`` evenly spaced over
    [0, num_train − 1], both ends included."""
    points = max(2, min(points, num_train))
    return sorted({round(i * (num_train - 1) / (points - 1)) for i in range(points)})


def step_cost(alphas_cumprod: torch.Tensor, s: int, t: int, gamma_t: float) -> float:
    """J(s, t)/d·2 = log(1 − β_{t|s}·Γ_t/β̄_t) for s < t (§4; Γ clipped to [0, 1])."""
    a_s, a_t = float(alphas_cumprod[s]), float(alphas_cumprod[t])
    gamma_t = min(max(gamma_t, 0.0), 1.0)
    return math.log(max(1 - (1 - a_t / a_s) * gamma_t / (1 - a_t), 1e-300))


def _dp(cost, steps: int) -> list[int]:
    """Indices of the cheapest ``steps``-point path from 0 to len(cost)−1 (cost[i, j], i < j)."""
    import numpy as np

    m = len(cost)
    best = np.full(m, np.inf)  # best[j]: cheapest path of k+1 points from 0 to j
    best[0] = 0.0
    back = np.zeros((steps, m), dtype=np.int64)
    for k in range(1, steps):
        total = best[:, None] + cost  # (from i, to j)
        back[k] = total.argmin(0)
        best = total.min(0)
    path, j = [m - 1], m - 1
    for k in range(steps - 1, 0, -1):
        j = int(back[k, j])
        path.append(j)
    return path[::-1]


def optimal_trajectory(
    alphas_cumprod: torch.Tensor, gammas: dict[int, float], steps: int
) -> list[int]:
    """The ``steps``-point trajectory over the fitted timesteps (from the smallest to the
    largest, both kept) that minimises Σ J(τ_{k−1}, τ_k): dynamic programming, O(K·M²) for M
    fitted timesteps. Returned decreasing, as a scheduler's timesteps.

    Where the estimate Γ_t exceeds 1 (impossible for the true value; Monte-Carlo noise near
    t = T) the cost is not trusted, as in the official ``_split``: from the first such timestep
    up, twice as many top candidates are set aside and spaced evenly with a share of the steps
    (1 − 0.8·their fraction of the grid, at least one), the DP covering the rest."""
    import numpy as np

    cand = sorted(int(t) for t in gammas)
    m = len(cand)
    if not 2 <= steps <= m:
        if steps == 1 and m:
            return [cand[-1]]
        raise ValueError(
            f"an optimal trajectory of {steps} steps needs Γ at ≥ {steps} timesteps (fitted: {m})"
        )
    first_bad = next((i for i, t in enumerate(cand) if gammas[t] > 1), m)
    bad = min(2 * (m - first_bad), m - 2)
    m1, k2 = m - bad, 0
    if bad > 0:
        k1 = min(math.ceil((1 - 0.8 * bad / m) * steps), m1)
        k2 = min(steps - k1, bad)
        k1 = steps - k2
        if k2 == 0:
            k1, k2 = steps - 1, 1
        if k1 < 2:
            k1, k2 = 2, steps - 2
    else:
        k1 = steps
    cost = np.full((m1, m1), np.inf)
    for j in range(1, m1):
        for i in range(j):
            cost[i, j] = step_cost(alphas_cumprod, cand[i], cand[j], gammas[cand[j]])
    path = _dp(cost, k1)
    if k2:  # the top segment, evenly spaced over candidate indices m1 … m−1
        frac = (m - 1 - (m1 - 1)) / k2
        path += sorted({round(m - 1 - frac * k) for k in range(k2)})
    return [cand[j] for j in reversed(path)]


def trajectory_bound(
    alphas_cumprod: torch.Tensor, gammas: dict[int, float], timesteps: list[int]
) -> float:
    """Σ J(τ_{k−1}, τ_k)/d·2 of a trajectory (any order): the part of the bound it changes."""
    ts = sorted(int(t) for t in timesteps)
    return sum(step_cost(alphas_cumprod, s, t, gammas[t]) for s, t in pairwise(ts))


class AnalyticDPMScheduler(SchedulerMixin, ConfigMixin):
    """Analytic-DDPM (``eta=1``) and Analytic-DDIM (``eta=0``) as a diffusers scheduler.

    Γ_t comes from :meth:`set_gammas` (an ``analytic_fit`` of the model) before sampling;
    ``data_range`` = (b − a)/2, if given, adds Theorem 2's bounded-data bound.
    """

    order = 1
    _compatibles: ClassVar[list[str]] = []

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: list[float] | None = None,
        prediction_type: str = "epsilon",
        timestep_spacing: str = "leading",
        steps_offset: int = 0,
        eta: float = 1.0,
        data_range: float | None = None,
    ) -> None:
        self.betas = betas_for(self.config)
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)  # float64
        self.init_noise_sigma = 1.0
        self.num_inference_steps: int | None = None
        self.timesteps = torch.arange(num_train_timesteps - 1, -1, -1)
        self.gammas: dict[int, float] = {}
        self.trajectories: dict[int, list[int]] = {}
        self._step_index = 0

    # ------------------------------------------------------------------ setup

    def set_gammas(self, gammas: dict[int, float]) -> None:
        """Γ_t per timestep from a fit (§3); values are clipped to [0, 1] when used."""
        self.gammas = {int(k): float(v) for k, v in gammas.items()}

    def set_trajectories(self, trajectories: dict[int, list[int]]) -> None:
        """Optimal trajectories per step count, cached with an ``analytic_fit`` (§4)."""
        self.trajectories = {int(k): [int(t) for t in v] for k, v in trajectories.items()}

    def set_timesteps(
        self, num_inference_steps: int, device: str | torch.device | None = None
    ) -> None:
        if self.config.timestep_spacing == OPTIMAL:
            ts = self.trajectories.get(num_inference_steps)
            if ts is None:
                raise KeyError(
                    f"No optimal trajectory of {num_inference_steps} steps: run an "
                    f"analytic_fit with timestep_spacing 'optimal' and steps "
                    f"[{num_inference_steps}]"
                )
        else:
            ts = trajectory(
                self.config.num_train_timesteps,
                num_inference_steps,
                self.config.timestep_spacing,
                self.config.steps_offset,
            )
        self.num_inference_steps = num_inference_steps
        self.timesteps = torch.tensor(ts, dtype=torch.long, device=device)
        self._step_index = 0

    def missing_gammas(self, timesteps: list[int] | None = None) -> list[int]:
        ts = [int(t) for t in (self.timesteps if timesteps is None else timesteps)]
        return [t for t in ts if t not in self.gammas]

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        return sample

    def __len__(self) -> int:
        return self.config.num_train_timesteps

    # ------------------------------------------------------------------ the math

    def _prev(self, t: int) -> int:
        ts = self.timesteps.tolist()
        i = ts.index(t)
        return ts[i + 1] if i + 1 < len(ts) else -1

    def _abar(self, t: int) -> float:
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def lambda2(self, t: int, prev: int) -> float:
        """λ_n² = η² β̄_s/β̄_n (1 − α_{n|s}): the variance of the family member (DDIM's σ(η)²)."""
        a_t, a_s = self._abar(t), self._abar(prev)
        return self.config.eta**2 * (1 - a_s) / (1 - a_t) * (1 - a_t / a_s)

    def optimal_variance(self, t: int, prev: int, gamma: float) -> float:
        """σ*_n² from Γ_n (Theorem 1, ε-form of the score), clipped to Theorem 2's bounds (the
        bounded-data one too if ``data_range`` is set)."""
        a_t, a_s = self._abar(t), self._abar(prev)
        bb_t, bb_s = 1 - a_t, 1 - a_s
        lam2 = self.lambda2(t, prev)
        coef = (math.sqrt(bb_t / (a_t / a_s)) - math.sqrt(max(bb_s - lam2, 0.0))) ** 2
        gamma = min(max(gamma, 0.0), 1.0)  # E‖E[ε|x_n]‖²/d ∈ [0, 1] for the exact ε (Theorem 2)
        var = lam2 + coef * (1 - gamma)
        upper = lam2 + coef
        if self.config.data_range is not None:
            c0 = math.sqrt(a_s) - math.sqrt(max(bb_s - lam2, 0.0)) * math.sqrt(a_t / bb_t)
            upper = min(upper, lam2 + c0**2 * self.config.data_range**2)
        return min(max(var, lam2), upper)

    def _alpha_sigma(self, t: int) -> tuple[float, float]:
        """(α_t, σ_t) = (√ᾱ_t, √(1 − ᾱ_t)) in float64, as the rest of this scheduler's math."""
        a_t = self._abar(t)
        return math.sqrt(a_t), math.sqrt(1 - a_t)

    def _to_eps(self, model_output: torch.Tensor, t: int, sample: torch.Tensor) -> torch.Tensor:
        return to_eps(self.config.prediction_type, model_output, sample, *self._alpha_sigma(t))

    def step(
        self,
        model_output: torch.Tensor,
        timestep,
        sample: torch.Tensor,
        generator: torch.Generator | list[torch.Generator] | None = None,
        return_dict: bool = True,
    ) -> SchedulerOutput | tuple:
        """One reverse step n → s: mean μ̃_n(x_n, x̂_0) plus σ*_n noise (Theorem 1)."""
        t = int(timestep)
        prev = self._prev(t)
        if t not in self.gammas:
            raise KeyError(f"No Γ for timestep {t}: run an analytic_fit for this step grid")
        eps = self._to_eps(model_output, t, sample)
        a_s = self._abar(prev)
        x0 = x0_from_eps(eps, sample, *self._alpha_sigma(t))
        lam2 = self.lambda2(t, prev)
        mean = math.sqrt(a_s) * x0 + math.sqrt(max(1 - a_s - lam2, 0.0)) * eps
        if prev < 0:
            prev_sample = mean
        else:
            var = self.optimal_variance(t, prev, self.gammas[t])
            noise = _randn(sample, generator)
            prev_sample = mean + math.sqrt(var) * noise
        self._step_index += 1
        if not return_dict:
            return (prev_sample, x0)
        return SchedulerOutput(prev_sample=prev_sample)

    def add_noise(
        self, original: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
    ) -> torch.Tensor:
        a = self.alphas_cumprod.to(original.device)[timesteps.long()].to(original.dtype)
        while a.dim() < original.dim():
            a = a.unsqueeze(-1)
        return a.sqrt() * original + (1 - a).sqrt() * noise


def _randn(like: torch.Tensor, generator) -> torch.Tensor:
    """Noise drawn on the CPU per generator (one per image), as the pipelines do."""
    if isinstance(generator, list):
        parts = [
            torch.randn(like.shape[1:], generator=g, dtype=torch.float32).unsqueeze(0)
            for g in generator
        ]
        return torch.cat(parts).to(like.device, like.dtype)
    noise = torch.randn(
        like.shape,
        generator=generator,
        dtype=torch.float32,
        device=generator.device if generator is not None else "cpu",
    )
    return noise.to(like.device, like.dtype)
