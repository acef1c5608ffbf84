"""What a network's output means, and how it becomes ε̂ or x̂₀: the prediction types in one place.

Every method that needs ε̂ (BayesDiff, Analytic-DPM, calibration, the fits, video editing) asks
this module instead of writing its own conversion (k-diffusion's habit: one denoiser wrapper).

**Diffusion (variance-preserving DDPM; SD 1.x/2.x/XL).** Diffusers' notation: ᾱ_t =
``alphas_cumprod[t]``, α_t = √ᾱ_t, σ_t = √(1−ᾱ_t), so that α_t² + σ_t² = 1 and

    x_t = α_t x₀ + σ_t ε                        (Ho et al. 2020, eq. 4)

The network predicts one of (``scheduler.config.prediction_type``):

- ``epsilon``: ε̂ itself (Ho et al. 2020, eq. 11);
- ``v_prediction``: v = α_t ε − σ_t x₀ (Salimans & Ho 2022, "Progressive distillation", §4 and
  appendix D), so ε = α_t v + σ_t x_t and x₀ = α_t x_t − σ_t v;
- ``sample``: x̂₀, so ε = (x_t − α_t x̂₀)/σ_t.

**Rectified flow (SD3, Flux; Liu et al. 2022; Esser et al. 2024, §2 and §3.1).** With t ∈ [0, 1]
(diffusers' σ of the flow-matching schedulers) the path from data to noise is straight:

    x_t = (1 − t) x₀ + t ε,        v = dx_t/dt = ε − x₀

and the network (``flow_prediction``) predicts v, so x₀ = x_t − t v and ε = x_t + (1 − t) v.
The same x_t is a VP point after rescaling: x_t/s = α x₀ + σ ε with s = √((1−t)² + t²),
α = (1−t)/s, σ = t/s (:func:`flow_as_vp`): the bridge the DDPM-derived methods would need.

The functions take α_t and σ_t as numbers so that each caller keeps the precision it computes
them in (Analytic-DPM takes ``math.sqrt`` of a float64 ᾱ; the others ``ᾱ ** 0.5``, as
:func:`alpha_sigma` does — the two differ in the last bit for a few ᾱ, so they are not mixed).
They work on tensors and floats alike, and keep the operation order they always had: moving a
method onto them changes none of its outputs by a bit.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Prediction(StrEnum):
    """What the network predicts; the values are diffusers' ``prediction_type`` strings."""

    EPSILON = "epsilon"
    V = "v_prediction"
    SAMPLE = "sample"
    FLOW = "flow_prediction"


def alpha_sigma(abar: float) -> tuple[float, float]:
    """(α_t, σ_t) = (√ᾱ_t, √(1 − ᾱ_t)) for a float ᾱ_t, rounded as ``ᾱ ** 0.5``."""
    return abar**0.5, (1 - abar) ** 0.5


# --------------------------------------------------------------------------- VP diffusion


def noised(x0: Any, eps: Any, alpha: float, sigma: float) -> Any:
    """x_t = α_t x₀ + σ_t ε: the forward marginal (Ho et al. 2020, eq. 4); with the DDIM grid's
    next ᾱ it is DDIM's deterministic step to it (Song et al. 2021, eq. 12, σ = 0)."""
    return alpha * x0 + sigma * eps


def x0_from_eps(eps: Any, x: Any, alpha: float, sigma: float) -> Any:
    """x̂₀ = (x_t − σ_t ε̂)/α_t (Ho et al. 2020, eq. 4 solved for x₀; DDIM's "predicted x₀")."""
    return (x - sigma * eps) / alpha


def eps_from_x0(x0: Any, x: Any, alpha: float, sigma: float) -> Any:
    """ε̂ = (x_t − α_t x̂₀)/σ_t for an x₀-predicting (``sample``) model."""
    return (x - alpha * x0) / sigma


def eps_from_v(v: Any, x: Any, alpha: float, sigma: float) -> Any:
    """ε̂ = α_t v̂ + σ_t x_t for a v-predicting model (v = α_t ε − σ_t x₀)."""
    return alpha * v + sigma * x


def x0_from_v(v: Any, x: Any, alpha: float, sigma: float) -> Any:
    """x̂₀ = α_t x_t − σ_t v̂ for a v-predicting model."""
    return alpha * x - sigma * v


def eps_variance_from_v(var: Any, abar: float) -> Any:
    """Var[ε̂] = ᾱ_t·Var[v̂] when only the network is uncertain (x_t given): ε̂ = α_t v̂ + σ_t x_t
    is affine in v̂ with slope α_t = √ᾱ_t (BayesDiff's weight-posterior variance of a v-model)."""
    return abar * var


def eps_shift_as_v(shift: Any, alpha: float) -> Any:
    """The change of v̂ that changes ε̂ by ``shift``: Δv = Δε/α_t (calibration subtracts the
    mean of ε̂; a v-model's output moves by that mean over √ᾱ_t)."""
    return shift / alpha


def to_eps(prediction: str, out: Any, x: Any, alpha: float, sigma: float) -> Any:
    """The model output ``out`` at x_t = ``x`` as ε̂, for ε-, v- and x₀-predicting models (ε̂ is
    ``out`` itself, not a copy). A flow model's velocity needs its time, not (α, σ):
    :func:`eps_from_flow`."""
    if prediction == Prediction.EPSILON:
        return out
    if prediction == Prediction.V:
        return eps_from_v(out, x, alpha, sigma)
    if prediction == Prediction.SAMPLE:
        return eps_from_x0(out, x, alpha, sigma)
    raise ValueError(f"prediction_type {prediction!r} is not supported")


def eps_shift_as_output(prediction: str, shift: Any, alpha: float, sigma: float) -> Any:
    """The change of the model's output that changes ε̂ by ``shift`` (x_t held): the shift
    itself for ε, Δε/α_t for v (:func:`eps_shift_as_v`), −(σ_t/α_t)·Δε for x₀ (ε̂ = (x_t −
    α_t x̂₀)/σ_t). Calibration subtracts the mean of ε̂ this way from any model's output."""
    if prediction == Prediction.EPSILON:
        return shift
    if prediction == Prediction.V:
        return eps_shift_as_v(shift, alpha)
    if prediction == Prediction.SAMPLE:
        return -(sigma / alpha) * shift
    raise ValueError(f"prediction_type {prediction!r} is not supported")


def eps_scale(prediction: str, alpha: float) -> float:
    """dε̂/d(output) for ε- and v-models: 1, or α_t (how conv_out's input and bias show in ε̂)."""
    return alpha if prediction == Prediction.V else 1.0


# --------------------------------------------------------------------------- rectified flow


def flow_noised(x0: Any, eps: Any, t: float) -> Any:
    """x_t = (1 − t) x₀ + t ε: the straight path (Esser et al. 2024, §3.1: eq. 3's a_t = 1 − t, b_t = t)."""
    return (1 - t) * x0 + t * eps


def x0_from_flow(v: Any, x: Any, t: float) -> Any:
    """x̂₀ = x_t − t v̂ (v = ε − x₀): what the flow samplers call the denoised sample."""
    return x - t * v


def eps_from_flow(v: Any, x: Any, t: float) -> Any:
    """ε̂ = x_t + (1 − t) v̂ (v = ε − x₀)."""
    return x + (1 - t) * v


def flow_as_vp(t: float) -> tuple[float, float, float]:
    """(s, α, σ) with x_t = s·(α x₀ + σ ε) and α² + σ² = 1: s = √((1−t)² + t²), α = (1−t)/s,
    σ = t/s. So x_t/s is a VP point with ᾱ = α², and a flow model's ε̂ (:func:`eps_from_flow`)
    is the ε̂ a DDPM method expects at that ᾱ."""
    s = ((1 - t) ** 2 + t**2) ** 0.5
    return s, (1 - t) / s, t / s
