"""Mean and diagonal variance of x_t through DDIM and DPM-Solver-2 (BayesDiff, Kou et al. §3.2).

Every sampler step BayesDiff defines is a *stage* of the form

    x_out = A·x_s + d·ε̂(x_in),      x_in = x_s (DDIM, DPM-Solver-2's first stage)
                                    x_in = x_mid (DPM-Solver-2's second stage)

so, with x_s ~ N(E, V) (diagonal) and the weights W ~ the Laplace posterior,

    Var[x_out] = A²·V + 2·A·d·Cov(x_s, ε̂) + d²·Var[ε̂]                       (Eq. 9–10)
    Var[ε̂]     = E_s[Var_W[ε̂ | x_in^(s)]] + Var_s[ε̂*(x_in^(s))]           (total variance)
    Cov(x_s, ε̂) ≈ the sample covariance over S draws x_s^(s) ~ N(E, V)

with Var_W in closed form (:func:`engine.uncertainty.laplace.predictive_variance`) and the S
draws batched with the mean into ONE UNet call. The mean path E is the plain sampler's
trajectory under the trained weights (so the image equals the one rendered without
uncertainty); the scheduler itself steps it.

Skip trick (§3.3): only every k-th step is *full* (the S draws). In between, a step costs one
ordinary UNet call plus one convolution: Var_W comes from the mean's φ and the sample terms are
carried by the per-element regression coefficients of the last full step, ρ = Cov(x_s, ε̂)/V and
r = Var_s[ε̂*]/V (a diagonal linearisation of ε̂ around E). Variances are clamped at 0.

DDIM (η ≥ 0): A = √(ᾱ_prev/ᾱ_t), d = √(1−ᾱ_prev−σ_t²) − √ᾱ_prev·√(1−ᾱ_t)/√ᾱ_t; the η-noise is
fixed by the seed, so it adds no variance. DPM-Solver-2 (Lu et al. 2022, Alg. 1 with r = ½, ε
form) in σ-space is k-diffusion's DPM2: x_mid = x + (σ_mid−σ)·ε̂(x), x_next = x + (σ_next−σ)·
ε̂(x_mid) with log σ_mid the mean of log σ and log σ_next — diffusers' ``KDPM2DiscreteScheduler``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from engine.uncertainty.eps_model import EpsModel

SUPPORTED = {"DDIMScheduler": "DDIM", "KDPM2DiscreteScheduler": "DPM-Solver-2"}


@dataclass
class Propagation:
    mean: torch.Tensor  # E[x_0] (the sampled latents)
    var: torch.Tensor  # Var[x_0], ≥ 0
    full_steps: int = 0
    unet_calls: int = 0
    clamped: int = 0  # elements whose variance went negative and were clamped
    var_at: dict[int, torch.Tensor] = field(default_factory=dict)  # recipe step → Var[x_t]


@dataclass
class _Stage:
    A: float
    d: float
    in_scale: float  # model input = in_scale · x_in
    abar: float  # ᾱ of the model input (for v → ε)
    key: int  # 0: DDIM / first stage, 1: second stage (its own skip coefficients)


def _ddim_stage(sched, t) -> _Stage:
    t = int(t)
    prev = t - sched.config.num_train_timesteps // sched.num_inference_steps
    ac = sched.alphas_cumprod
    a_t = float(ac[t])
    a_prev = float(ac[prev]) if prev >= 0 else float(sched.final_alpha_cumprod)
    return _Stage(A=(a_prev / a_t) ** 0.5, d=0.0, in_scale=1.0, abar=a_t, key=0)


def _ddim_d(stage: _Stage, a_prev: float, sigma2: float) -> float:
    return max(1 - a_prev - sigma2, 0.0) ** 0.5 - a_prev**0.5 * (1 - stage.abar) ** 0.5 / stage.abar**0.5


def _stage(sched, t, eta: float) -> _Stage:
    name = type(sched).__name__
    if name == "DDIMScheduler":
        st = _ddim_stage(sched, t)
        a_prev = st.A**2 * st.abar
        sigma2 = eta**2 * (1 - a_prev) / (1 - st.abar) * (1 - st.abar / a_prev)
        st.d = _ddim_d(st, a_prev, sigma2)
        return st
    if name == "KDPM2DiscreteScheduler":
        i = sched.step_index
        if sched.state_in_first_order:
            s, s_in, s_to = sched.sigmas[i], sched.sigmas[i], sched.sigmas_interpol[i + 1]
            key = 0
        else:
            s, s_in, s_to = sched.sigmas[i - 1], sched.sigmas_interpol[i], sched.sigmas[i]
            key = 1
        s, s_in, s_to = float(s), float(s_in), float(s_to)
        return _Stage(A=1.0, d=s_to - s, in_scale=(s_in**2 + 1) ** -0.5,
                      abar=1.0 / (s_in**2 + 1), key=key)
    raise ValueError(f"uncertainty propagates through DDIM and DPM2 only, not {name}")


def _combine(st: _Stage, V, cov, var_eps):
    out = st.A**2 * V + 2 * st.A * st.d * cov + st.d**2 * var_eps
    neg = int((out < 0).sum())
    return out.clamp_min(0), neg


def propagate(
    model: EpsModel,
    sched,
    x_T: torch.Tensor,
    *,
    samples: int = 5,
    skip: int = 5,
    generator: torch.Generator | None = None,
    step_kwargs: dict | None = None,
    on_iter: Callable[[int, int, torch.Tensor], None] | None = None,
    variation: tuple[int, torch.Tensor] | None = None,
    keep_var_at: tuple[int, ...] = (),
) -> Propagation:
    """Sample from ``x_T`` (already scaled by ``init_noise_sigma``) with ``sched`` (timesteps
    set), propagating Var[x_t]. Full steps are recipe steps 1, 1+k, 1+2k, … (step 0 starts at
    V = 0, where the draws would all be equal, so it is exact at the cost of a plain step).

    ``variation = (t, z)``: after recipe step t, replace the batch by E + √V·z (z: (n, …) standard
    normal draws) and continue from V = 0 for each of the n variations.
    ``on_iter(i, steps_done, mean)`` runs after every scheduler iteration (cancel, previews)."""
    gen = generator or torch.Generator().manual_seed(0)
    kwargs = step_kwargs or {}
    eta = float(kwargs.get("eta", 0.0) or 0.0)
    E = x_T
    V = torch.zeros_like(x_T, dtype=torch.float32)
    coef: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    res = Propagation(E, V)
    def first_order() -> bool:
        return getattr(sched, "state_in_first_order", True)

    step = 0
    xs = xs_mid = None  # the draws of x_s (and their midpoints) at a full step
    V_saved = V  # Var[x_s] of the step in progress (DPM-Solver-2's second stage needs it)
    timesteps = sched.timesteps
    for i, t in enumerate(timesteps):
        x_in_mean = sched.scale_model_input(E, t)
        st = _stage(sched, t, eta)
        full = step >= 1 and (step - 1) % skip == 0 and samples > 1
        if full and st.key == 0:
            noise = torch.randn((samples, *E.shape), generator=gen).to(E.device, torch.float32)
            xs = E.float().unsqueeze(0) + V.sqrt().unsqueeze(0) * noise
            x_in_s = xs
        elif full and st.key == 1 and xs_mid is not None:
            x_in_s = xs_mid
        if full and xs is not None:
            B = E.shape[0]
            batch = torch.cat([x_in_mean, (x_in_s * st.in_scale).flatten(0, 1).to(E.dtype)])
            out = model(batch, t, st.abar)
            raw_mean = out.raw[:B]
            eps_s = out.eps[B:].view(samples, *E.shape)
            varw_s = out.var[B:].view(samples, *E.shape)
            dx = xs - xs.mean(0)
            de = eps_s - eps_s.mean(0)
            cov = (dx * de).sum(0) / (samples - 1)
            var_s = de.square().sum(0) / (samples - 1)
            var_eps = varw_s.mean(0) + var_s
            Vs = V if st.key == 0 else V_saved
            safe = Vs > Vs.amax() * 1e-6 if Vs.amax() > 0 else torch.zeros_like(Vs, dtype=torch.bool)
            rho = torch.where(safe, cov / Vs.clamp_min(1e-30), torch.zeros_like(cov))
            r = torch.where(safe, var_s / Vs.clamp_min(1e-30), torch.zeros_like(cov))
            coef[st.key] = (rho, r)
            res.full_steps += st.key == 0
            if st.key == 0:
                # The draws' midpoints for DPM-Solver-2's second stage: each carries its own
                # weight-noise draw of ε̂ (the law of total variance, sampled).
                wz = torch.randn(eps_s.shape, generator=gen).to(E.device)
                xs_mid = xs + st.d * (eps_s + varw_s.sqrt() * wz)
        else:
            out = model(x_in_mean, t, st.abar)
            raw_mean = out.raw
            Vs = V if st.key == 0 else V_saved
            rho, r = coef.get(st.key, (torch.zeros(()), torch.zeros(())))
            rho, r = rho.to(E.device), r.to(E.device)
            cov = rho * Vs
            var_eps = out.var + r * Vs
        if st.key == 0:
            V_saved = V
        Vs = V if st.key == 0 else V_saved
        V, neg = _combine(st, Vs, cov, var_eps)
        res.clamped += neg
        E = sched.step(raw_mean, t, E, **kwargs).prev_sample
        if first_order() or i == len(timesteps) - 1:
            step += 1
            xs = None if first_order() else xs
            if step in keep_var_at:
                res.var_at[step] = V.clone()
            if variation is not None and step == variation[0] and first_order():
                z = variation[1].to(E.device, torch.float32)
                E = (E.float() + V.sqrt() * z).to(E.dtype)
                V = torch.zeros_like(E, dtype=torch.float32)  # ρ, r broadcast over the draws
        if on_iter is not None:
            on_iter(i, step, E)
    res.mean, res.var, res.unet_calls = E, V, model.calls
    return res
