"""engine/denoisers.py: the prediction-type conversions agree with each other, with diffusers'
own definitions, and keep the rounding the methods had before they moved here."""

from __future__ import annotations

import math

import pytest
import torch

from engine import denoisers as d

ABARS = (0.9991, 0.5, 0.0470, 0.9429470213131631)


def _pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64), torch.randn(
        2, 4, 8, 8, generator=g, dtype=torch.float64
    )


@pytest.mark.parametrize("abar", ABARS)
def test_vp_conversions_invert_each_other(abar):
    x0, eps = _pair()
    alpha, sigma = d.alpha_sigma(abar)
    x = d.noised(x0, eps, alpha, sigma)
    v = alpha * eps - sigma * x0  # Salimans & Ho's definition
    close = {"rtol": 1e-9, "atol": 1e-9}
    torch.testing.assert_close(d.eps_from_v(v, x, alpha, sigma), eps, **close)
    torch.testing.assert_close(d.x0_from_v(v, x, alpha, sigma), x0, **close)
    torch.testing.assert_close(d.x0_from_eps(eps, x, alpha, sigma), x0, **close)
    torch.testing.assert_close(d.eps_from_x0(x0, x, alpha, sigma), eps, **close)
    for prediction, out in (("epsilon", eps), ("v_prediction", v), ("sample", x0)):
        torch.testing.assert_close(d.to_eps(prediction, out, x, alpha, sigma), eps, **close)
    # the mean-shift and scale rules are the derivative of eps_from_v in v
    torch.testing.assert_close(
        d.eps_from_v(v + d.eps_shift_as_v(eps, alpha), x, alpha, sigma), 2 * eps, **close
    )
    assert d.eps_scale("v_prediction", alpha) == alpha and d.eps_scale("epsilon", alpha) == 1.0
    assert d.eps_variance_from_v(2.0, abar) == 2.0 * abar


def test_to_eps_refuses_what_it_cannot_convert():
    x0, eps = _pair()
    assert d.to_eps(d.Prediction.EPSILON, eps, x0, 0.5, 0.5) is eps  # the output itself
    with pytest.raises(ValueError, match="flow_prediction"):
        d.to_eps("flow_prediction", eps, x0, 0.5, 0.5)


def test_v_matches_diffusers_get_velocity():
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type="v_prediction",
    )
    x0, eps = (a.float() for a in _pair(1))
    t = torch.tensor([10, 700])
    v = sched.get_velocity(x0, eps, t)
    abar = sched.alphas_cumprod[t].double()
    for i in range(2):
        alpha, sigma = d.alpha_sigma(float(abar[i]))
        x = d.noised(x0[i], eps[i], alpha, sigma)
        torch.testing.assert_close(
            d.eps_from_v(v[i], x, alpha, sigma), eps[i], rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize("t", (0.0, 0.25, 0.7, 1.0))
def test_flow_conversions(t):
    x0, eps = _pair(2)
    x = d.flow_noised(x0, eps, t)
    v = eps - x0
    torch.testing.assert_close(d.x0_from_flow(v, x, t), x0)
    torch.testing.assert_close(d.eps_from_flow(v, x, t), eps)
    s, alpha, sigma = d.flow_as_vp(t)
    assert math.isclose(alpha**2 + sigma**2, 1.0)
    torch.testing.assert_close(s * d.noised(x0, eps, alpha, sigma), x)


def test_flow_matches_diffusers_scale_noise():
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sched.set_timesteps(10)
    x0, eps = (a.float() for a in _pair(3))
    i = 4
    x = sched.scale_noise(x0, sched.timesteps[i : i + 1], eps)
    torch.testing.assert_close(x, d.flow_noised(x0, eps, float(sched.sigmas[i])))
    # Euler's step x + (σ_next − σ)·v lands on the path at σ_next when v is the true velocity
    step = sched.step(eps - x0, sched.timesteps[i], x).prev_sample
    torch.testing.assert_close(step, d.flow_noised(x0, eps, float(sched.sigmas[i + 1])))


def test_the_historic_rounding_is_kept():
    """The methods computed ε = ᾱ**0.5·v + (1−ᾱ)**0.5·x and x̂₀ = (z − (1−ᾱ)**0.5·ε)/ᾱ**0.5;
    the module must give the same bits (for ᾱ = 0.94294…, √ and **0.5 differ in the last bit,
    so a move to math.sqrt would fail here)."""
    abar = 0.9429470213131631
    assert math.sqrt(abar) != abar**0.5  # the case is a real one
    v, x = (a.float() for a in _pair(4))
    alpha, sigma = d.alpha_sigma(abar)
    assert alpha == abar**0.5 and sigma == (1 - abar) ** 0.5
    assert torch.equal(d.eps_from_v(v, x, alpha, sigma), abar**0.5 * v + (1 - abar) ** 0.5 * x)
    assert torch.equal(d.x0_from_eps(v, x, alpha, sigma), (x - (1 - abar) ** 0.5 * v) / abar**0.5)
    assert torch.equal(d.noised(x, v, alpha, sigma), abar**0.5 * x + (1 - abar) ** 0.5 * v)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
def test_an_eps_shift_moves_any_output_by_that_shift_in_eps(prediction):
    """Calibration subtracts the mean of ε̂ from the model's output: after the shift, the
    output read as ε̂ is ε̂ − m, whatever the model predicts."""
    x0, eps = _pair(5)
    m = torch.full_like(eps, 0.25)
    alpha, sigma = d.alpha_sigma(0.3)
    x = d.noised(x0, eps, alpha, sigma)
    out = {"epsilon": eps, "v_prediction": alpha * eps - sigma * x0, "sample": x0}[prediction]
    shifted = out - d.eps_shift_as_output(prediction, m, alpha, sigma)
    torch.testing.assert_close(d.to_eps(prediction, shifted, x, alpha, sigma), eps - m)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
def test_the_fits_and_video_read_every_prediction_type_as_eps(prediction):
    """fit_jobs.make_eps and video's predict_eps hand the methods ε̂ for ε-, v- and
    x₀-predicting UNets (an x₀ model's output was taken for ε̂ before)."""
    from types import SimpleNamespace

    from engine.fit_jobs import make_eps
    from engine.video.denoise import VideoNets, predict_eps

    x0, eps = (a.float() for a in _pair(6))
    abar = 0.4
    alpha, sigma = d.alpha_sigma(abar)
    x = d.noised(x0, eps, alpha, sigma)
    out = {"epsilon": eps, "v_prediction": alpha * eps - sigma * x0, "sample": x0}[prediction]

    def unet(_x, _t, **_kw):  # a "network" that knows the answer
        return SimpleNamespace(sample=out)

    unet.dtype = torch.float32
    loaded = SimpleNamespace(pipe=SimpleNamespace(unet=unet), device="cpu", dtype=torch.float32)
    ac = torch.full((10,), abar, dtype=torch.float64)
    got = make_eps(loaded, torch.zeros(1, 3, 4), ac, prediction)(x, 5, [0, 1])
    torch.testing.assert_close(got, eps, rtol=1e-5, atol=1e-5)
    nets = VideoNets(
        unet,
        None,
        None,
        None,
        None,
        {"prediction_type": prediction},
        torch.device("cpu"),
        torch.float32,
    )
    got = predict_eps(nets, x, 5, torch.zeros(1, 3, 4), alpha=abar)
    torch.testing.assert_close(got, eps, rtol=1e-5, atol=1e-5)
