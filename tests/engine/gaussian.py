"""Gaussian data x₀ ~ N(μ, Σ): the one case where the exact noise prediction is closed form.

q_t(x_t) = N(√ᾱ μ, C_t), C_t = ᾱΣ + (1−ᾱ)I, so ε*(x_t, t) = E[ε|x_t] = √(1−ᾱ) C_t⁻¹(x_t − √ᾱ μ).
Samples are shaped (N, D, 1, 1) like latents, so every scheduler runs unchanged.
"""

from __future__ import annotations

import math

import torch

D = 3
MU = torch.tensor([1.0, -0.5, 0.3], dtype=torch.float64)
_A = torch.tensor([[0.9, 0.0, 0.0], [0.4, 0.5, 0.0], [-0.2, 0.3, 0.25]], dtype=torch.float64)
SIGMA = _A @ _A.T

#: DDPM's linear schedule: ᾱ_T ≈ 4e-5, so N(0, I) is the right start and samplers can be
#: compared with the data itself.
CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "prediction_type": "epsilon",
    "steps_offset": 1,
}


def alphas_cumprod(config: dict = CONFIG) -> torch.Tensor:
    betas = torch.linspace(
        config["beta_start"], config["beta_end"], config["num_train_timesteps"], dtype=torch.float64
    )
    return torch.cumprod(1 - betas, 0)


def abar_at(t: float, ac: torch.Tensor) -> float:
    """ᾱ at a fractional timestep the way k-diffusion-style schedulers map σ → t: linear
    interpolation of log σ between integer timesteps."""
    log_sigmas = (((1 - ac) / ac) ** 0.5).log()
    lo = min(max(math.floor(t), 0), len(ac) - 1)
    hi = min(lo + 1, len(ac) - 1)
    w = t - lo
    log_sigma = (1 - w) * log_sigmas[lo] + w * log_sigmas[hi]
    return float(1 / (1 + log_sigma.exp() ** 2))


def cov_t(a: float) -> torch.Tensor:
    return a * SIGMA + (1 - a) * torch.eye(D, dtype=torch.float64)


class ExactModel:
    """ε*(x_t, t) (or v*) for the Gaussian data, plus an optional constant bias."""

    def __init__(
        self,
        prediction_type: str = "epsilon",
        bias: torch.Tensor | None = None,
        config: dict = CONFIG,
    ) -> None:
        self.prediction_type = prediction_type
        self.bias = bias
        self.ac = alphas_cumprod(config)

    def eps(self, x: torch.Tensor, t: float) -> torch.Tensor:
        a = abar_at(float(t), self.ac)
        flat = x.reshape(len(x), D).double()
        e = (1 - a) ** 0.5 * torch.linalg.solve(cov_t(a), (flat - a**0.5 * MU).T).T
        if self.bias is not None:
            e = e + self.bias
        return e.reshape(x.shape).to(x.dtype)

    def __call__(self, x: torch.Tensor, t) -> torch.Tensor:
        t = float(torch.as_tensor(t).flatten()[0])
        e = self.eps(x, t)
        if self.prediction_type == "epsilon":
            return e
        a = abar_at(t, self.ac)
        x0 = (x - (1 - a) ** 0.5 * e) / a**0.5
        return a**0.5 * e - (1 - a) ** 0.5 * x0  # v-prediction


def exact_gamma(t: int, ac: torch.Tensor) -> float:
    """Γ_t = E‖ε*‖²/d = (1−ᾱ) tr(C_t⁻¹)/d."""
    a = float(ac[t])
    return float((1 - a) * torch.linalg.inv(cov_t(a)).trace() / D)


def posterior_cov_trace(a: float) -> float:
    """tr Cov(x₀ | x_t)/d = tr (Σ⁻¹ + ᾱ/(1−ᾱ) I)⁻¹ / d."""
    inv = torch.linalg.inv(SIGMA) + a / (1 - a) * torch.eye(D, dtype=torch.float64)
    return float(torch.linalg.inv(inv).trace() / D)


def sample_data(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, D, generator=g, dtype=torch.float64)
    return (MU + z @ _A.T).float().reshape(n, D, 1, 1)


def run_sampler(
    scheduler,
    model,
    steps: int,
    n: int = 4000,
    seed: int = 0,
    x_T: torch.Tensor | None = None,
    **step_kwargs,
) -> torch.Tensor:
    """The pipelines' loop: set_timesteps, then scale_model_input → model → step."""
    import inspect

    g = torch.Generator().manual_seed(seed)
    if "generator" in inspect.signature(scheduler.step).parameters:
        step_kwargs = {"generator": g, **step_kwargs}
    scheduler.set_timesteps(steps)
    x = torch.randn(n, D, 1, 1, generator=g) if x_T is None else x_T.clone()
    x = x * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        inp = scheduler.scale_model_input(x, t)
        out = model(inp, t)
        x = scheduler.step(out, t, x, **step_kwargs).prev_sample
    return x.reshape(n, D).double()


def moments_error(x: torch.Tensor) -> tuple[float, float]:
    """(‖mean − μ‖, ‖cov − Σ‖_F / ‖Σ‖_F)."""
    mean = x.mean(0)
    cov = torch.cov(x.T)
    return float((mean - MU).norm()), float((cov - SIGMA).norm() / SIGMA.norm())
