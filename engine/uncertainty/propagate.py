"""Mean and diagonal variance of x_t through DDIM and DPM-Solver-2 (BayesDiff, Kou et al. §3.2).

Every sampler step BayesDiff defines is a *stage* of the form

    x_out = A·x_s + d·ε̂(x_in),      x_in = x_s (DDIM, DPM-Solver-2's first stage)
                                    x_in = x_mid (DPM-Solver-2's second stage)

and, with the weights W ~ the Laplace posterior (one draw serves the whole trajectory),

    Var[x_out] = A²·V + 2·A·d·Cov(x_s, ε̂) + d²·Var[ε̂]                        (Eq. 9–10)
    Var[ε̂]     = Var_W[ε̂ | mean φ] + Var_s[ε̂*] + 2·Cov_s(ε̂*, conv(φ, δW))

with Var_W in closed form (:func:`engine.uncertainty.laplace.predictive_variance`, one extra
convolution) and the covariances estimated from S Monte-Carlo samples of x_t batched with the
mean into ONE UNet call. The mean path E is the plain sampler's trajectory under the trained
weights (so the image equals the one rendered without uncertainty); the scheduler steps it.

Where the S samples come from is the one change from the paper, and it is measured
(docs/uncertainty.md, ``bench/uncertainty_agreement.py``): the paper redraws them at each step
from N(E, diag V). Those draws are spatially white and independent of W, while the deviations a
weight error really causes are smooth and made by the same W at every step; with them the
propagated Var[x₀] came out 0.07–0.67 of the Monte-Carlo ground truth, uncorrelated with it
element by element (≤ 0.15). Here the samples are *carried*: S particles D_s = x_t^(s) − E[x_t],
each with its own weight draw δW_s held for the whole trajectory, stepped like the sampler
(D_out = A·D_s + d·(ε̂*(E + D_s) − ε̂*(E) + conv(φ, δW_s) + δb_s)). Their sample moments
(3×3-smoothed) give the Cov and Var_s terms; V itself is carried by Eq. 9–10 with the closed
form, which keeps it less noisy than the particles' own spread. Against Monte-Carlo this lands
within 2× in total and correlates > 0.5 (S = 32; tests/engine/test_uncertainty_propagation.py).

Skip trick (§3.3): only every k-th step is *full* (the S particles through the UNet). In between,
a step costs one ordinary UNet call plus one grouped convolution (the S weight draws on the
mean's φ): each particle's response ε̂* is the last full step's plus a smoothed per-element
regression ρ = Cov(D, R)/Var(D) times its change since. Variances are clamped at 0.

DDIM (η ≥ 0): A = √(ᾱ_prev/ᾱ_t), d = √(1−ᾱ_prev−σ_t²) − √ᾱ_prev·√(1−ᾱ_t)/√ᾱ_t, and the step's
fresh noise σ_t·z adds σ_t² = η²·(1−ᾱ_prev)/(1−ᾱ_t)·(1−ᾱ_t/ᾱ_prev) to Var[x_{t−1}] (the paper's
propagation, x_{t−1} = mean + σ_t z): the variance is then over the weights *and* the sampling
noise, as the Monte-Carlo of ``tests/engine/test_uncertainty_eta.py`` draws both. With particles
(S > 1) each particle replaces the mean path's seeded noise by its own draw, so E + D_s is an
independent sample path, and V after a noisy step is the particles' (3×3-smoothed) variance —
the paper's σ_t² is in it. Why not Eq. 9–10 + σ_t² on the diagonal V, as the paper writes it:
measured against Monte-Carlo (docs/uncertainty.md), the white step noise is mostly removed by the
later steps through ε̂'s *off-diagonal* response, which a diagonal V cannot carry — with a
posterior as narrow as a real fit's it overestimated Var[x₀] 7.6× (correlation 0.1–0.2); the
particles' spread lands at 1.4× (correlation 0.8). Without particles (S = 1) the paper's σ_t² is
added to the diagonal V. The mean path keeps the seeded noise, so the image is the one rendered
without uncertainty. DPM-Solver-2 (Lu et al. 2022, Alg. 1 with r = ½, ε
form) in σ-space is k-diffusion's DPM2: x_mid = x + (σ_mid−σ)·ε̂(x), x_next = x + (σ_next−σ)·
ε̂(x_mid) with log σ_mid the mean of log σ and log σ_next — diffusers' ``KDPM2DiscreteScheduler``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

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
    noise_var: float = 0.0  # σ_t² of the fresh noise the step adds (DDIM with η > 0)


def _ddim_stage(sched, t) -> _Stage:
    t = int(t)
    prev = t - sched.config.num_train_timesteps // sched.num_inference_steps
    ac = sched.alphas_cumprod
    a_t = float(ac[t])
    a_prev = float(ac[prev]) if prev >= 0 else float(sched.final_alpha_cumprod)
    return _Stage(A=(a_prev / a_t) ** 0.5, d=0.0, in_scale=1.0, abar=a_t, key=0)


def _ddim_d(stage: _Stage, a_prev: float, sigma2: float) -> float:
    return (
        max(1 - a_prev - sigma2, 0.0) ** 0.5
        - a_prev**0.5 * (1 - stage.abar) ** 0.5 / stage.abar**0.5
    )


def _stage(sched, t, eta: float) -> _Stage:
    name = type(sched).__name__
    if name == "DDIMScheduler":
        st = _ddim_stage(sched, t)
        a_prev = st.A**2 * st.abar
        sigma2 = eta**2 * (1 - a_prev) / (1 - st.abar) * (1 - st.abar / a_prev)
        st.d = _ddim_d(st, a_prev, sigma2)
        st.noise_var = sigma2
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
        return _Stage(
            A=1.0, d=s_to - s, in_scale=(s_in**2 + 1) ** -0.5, abar=1.0 / (s_in**2 + 1), key=key
        )
    raise ValueError(f"uncertainty propagates through DDIM and DPM2 only, not {name}")


def _combine(st: _Stage, V, cov, var_eps):
    out = st.A**2 * V + 2 * st.A * st.d * cov + st.d**2 * var_eps + st.noise_var
    neg = int((out < 0).sum())
    return out.clamp_min(0), neg


def _smooth(x: torch.Tensor) -> torch.Tensor:
    """3×3 box mean over (h, w) of (N, C, h, w) sample moments: S draws give a noisy moment per
    element; its neighbours see almost the same Jacobian and weights, so pooling them cuts the
    noise ~3× at the cost of a little spatial blur (measured in docs/uncertainty.md)."""
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


def _cov(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Unbiased sample covariance over dim 0 (the S particles)."""
    return ((a - a.mean(0)) * (b - b.mean(0))).sum(0) / (a.shape[0] - 1)


@dataclass
class _Particles:
    """S deviations D_s = x_t^(s) − E[x_t] from the mean path, each under its own conv_out
    weight draw (δW_s, δb_s) held for the whole trajectory, as one posterior sample of the
    model would be. Their sample moments give Cov(x_t, ε̂) and Var_s[ε̂*] in Eq. 9–10."""

    dW: torch.Tensor  # (S, O, I, kh, kw)
    dB: torch.Tensor  # (S, O)
    D: torch.Tensor  # (S, B, C, h, w) deviation of the scheduler's state
    D_origin: torch.Tensor  # DPM-Solver-2: the deviation of the step's origin x_s
    last: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    @classmethod
    def draw(cls, model: EpsModel, S: int, like: torch.Tensor, gen: torch.Generator):
        wv, bv = model.post.weight_var, model.post.bias_var
        dW = wv.sqrt() * torch.randn((S, *wv.shape), generator=gen).to(wv.device)
        dB = bv.sqrt() * torch.randn((S, *bv.shape), generator=gen).to(bv.device)
        D = torch.zeros((S, *like.shape), device=like.device, dtype=torch.float32)
        return cls(dW, dB, D, D)

    @property
    def S(self) -> int:
        return self.D.shape[0]

    def weight_noise(self, model: EpsModel, phi: torch.Tensor, abar: float) -> torch.Tensor:
        """conv(φ, δW_s) + δb_s for each particle: (S, B, O, h, w). ``phi``: (B, I, h, w), one
        shared φ (a skip step), or (S·B, I, h, w), each particle's own."""
        S, B = self.S, self.D.shape[1]
        phi = phi.view(-1, B, *phi.shape[1:]).expand(S, -1, -1, -1, -1)
        # One grouped convolution: the S draws as S groups.
        x = phi.permute(1, 0, 2, 3, 4).reshape(B, -1, *phi.shape[3:])
        w = self.dW.flatten(0, 1)
        b = self.dB.flatten() * model.bias_scale(abar)
        pad = model.post.padding
        out = F.conv2d(x, w.to(x.dtype), b.to(x.dtype), padding=pad, groups=S)
        return out.view(B, S, -1, *out.shape[2:]).permute(1, 0, 2, 3, 4)


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
    set), propagating Var[x_t]. Full steps are recipe steps 1, 1+k, 1+2k, … At recipe step 0
    every particle still sits on the mean, so DDIM's step and DPM-Solver-2's first stage are
    exact at the cost of a plain call; DPM-Solver-2's second stage is not (the first stage has
    moved the particles off the mean), so it is a full stage.

    ``variation = (t, z)``: after recipe step t, replace the batch by E + √V·z (z: (n, …) standard
    normal draws) and continue from V = 0 for each of the n variations.
    ``on_iter(i, steps_done, mean)`` runs after every scheduler iteration (cancel, previews)."""
    gen = generator or torch.Generator().manual_seed(0)
    kwargs = step_kwargs or {}
    eta = float(kwargs.get("eta", 0.0) or 0.0)
    E = x_T
    V = V_origin = torch.zeros_like(x_T, dtype=torch.float32)
    res = Propagation(E, V)
    P = _Particles.draw(model, samples, E, gen) if samples > 1 else None

    def first_order() -> bool:
        return getattr(sched, "state_in_first_order", True)

    step = 0
    timesteps = sched.timesteps
    for i, t in enumerate(timesteps):
        x_in_mean = sched.scale_model_input(E, t)
        st = _stage(sched, t, eta)
        if st.key == 0:
            V_origin = V
            if P is not None:
                P.D_origin = P.D
        full = P is not None and (
            (step >= 1 and (step - 1) % skip == 0) or (step == 0 and st.key == 1)
        )
        if full:
            B = E.shape[0]
            D_in = P.D * st.in_scale
            batch = torch.cat([x_in_mean, (x_in_mean.float() + D_in).flatten(0, 1).to(E.dtype)])
            out = model(batch, t, st.abar)
            raw_mean = out.raw[:B]
            R = out.eps[B:].view(P.S, *E.shape) - out.eps[:B]
            noise = P.weight_noise(model, out.phi[B:], st.abar)
            var_w = out.var[B:].view(P.S, *E.shape).mean(0)
            # The diagonal response of ε̂* to the deviation (smoothed regression), for the
            # skip steps until the next full one.
            rho = _smooth((D_in * R).sum(0)) / _smooth(D_in.square().sum(0)).clamp_min(1e-30)
            P.last[st.key] = (R, D_in, rho)
            res.full_steps += st.key == 0
        else:
            out = model(x_in_mean, t, st.abar)
            raw_mean = out.raw
            var_w = out.var
            if P is not None:
                D_in = P.D * st.in_scale
                if st.key in P.last:  # ε̂*'s response: the last full step's, plus ρ·(change)
                    R0, D0, rho = P.last[st.key]
                    R = R0 + rho * (D_in - D0)
                else:
                    R = torch.zeros_like(D_in)
                noise = P.weight_noise(model, out.phi, st.abar)
        if P is None:
            cov, var_eps = torch.zeros_like(V), var_w
        else:
            delta = R + noise  # each particle's ε̂ minus the mean path's ε̂*
            cov = _smooth(_cov(P.D_origin, delta))
            var_eps = var_w + _smooth(_cov(R, R) + 2 * _cov(R, noise))
            P.D = st.A * P.D_origin + st.d * delta
            if st.noise_var > 0:  # each particle's own draw of the step's noise
                z = torch.randn(P.D.shape, generator=gen).to(P.D.device)
                P.D = P.D + st.noise_var**0.5 * z
        V, neg = _combine(st, V_origin, cov, var_eps)
        res.clamped += neg
        E_prev = E
        E = sched.step(raw_mean, t, E, **kwargs).prev_sample
        if P is not None and st.noise_var > 0:
            # The mean path drew σ_t·z₀ (the seed's); a particle's own draw σ_t·z_s replaces it,
            # so each particle E + D_s is an independent sample path, and V is their spread.
            quiet = {k: v for k, v in kwargs.items() if k != "generator"}
            noiseless = sched.step(
                raw_mean, t, E_prev, variance_noise=torch.zeros_like(E), **quiet
            ).prev_sample
            P.D = P.D - (E - noiseless).float()
            V = _smooth(P.D.var(0))
        if first_order() or i == len(timesteps) - 1:
            step += 1
            if step in keep_var_at:
                res.var_at[step] = V.clone()
            if variation is not None and step == variation[0] and first_order():
                z = variation[1].to(E.device, torch.float32)
                E = (E.float() + V.sqrt() * z).to(E.dtype)
                V = torch.zeros_like(E, dtype=torch.float32)
                if P is not None:  # each variation restarts its own particles on its mean
                    P.D = P.D_origin = torch.zeros((P.S, *E.shape), device=E.device)
                    P.last.clear()
        if on_iter is not None:
            on_iter(i, step, E)
    res.mean, res.var, res.unet_calls = E, V, model.calls
    return res
