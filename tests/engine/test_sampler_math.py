"""Every sampler on Gaussian data with the exact noise prediction: known answers.

No UNet: :mod:`tests.engine.gaussian` gives ε*(x_t, t) in closed form, plugged into each
scheduler's own step loop, so what is tested is the scheduler math the engine uses.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from engine.calibration import CalibrationTable, calibrate_output
from engine.eps_stats import estimate_eps_stats
from engine.protocol import GenerateParams
from engine.samplers import CATALOGUE
from engine.schedulers.analytic_dpm import AnalyticDPMScheduler
from tests.engine.gaussian import (
    CONFIG,
    MU,
    SIGMA,
    ExactModel,
    alphas_cumprod,
    cov_t,
    exact_gamma,
    moments_error,
    posterior_cov_trace,
    run_sampler,
    sample_data,
)

AC = alphas_cumprod()
DISTILLED = {"LCM", "TCD"}  # consistency samplers: for distilled models, see below
#: Slow convergers, measured: diffusers' third-order SDE solver is still ~0.1 off at 500 steps.
COV_TOL = {"DPM++ 3M SDE": 0.3}
FEW_STEPS = {"LMS": 40}  # LMS integrates its coefficients with scipy at every step: slow


def build(name: str, config: dict = CONFIG, **options):
    spec = CATALOGUE[name]
    params = GenerateParams(sampler=name, **options)
    scheduler = spec.build(config, params)
    if isinstance(scheduler, AnalyticDPMScheduler):
        scheduler.set_gammas({t: exact_gamma(t, AC) for t in range(1000)})
    return scheduler, spec.call_kwargs(params)


# the ε/v samplers; flow samplers solve another ODE (tests/engine/test_flow_models.py)
@pytest.mark.parametrize(
    "name",
    [n for n, s in CATALOGUE.items() if n not in DISTILLED and s.model_family == "diffusion"],
)
def test_samples_converge_to_the_data_moments(name):
    many = FEW_STEPS.get(name, 100)
    errors = {}
    for steps in (8, many):
        scheduler, kwargs = build(name)
        x = run_sampler(scheduler, ExactModel(), steps, n=2000, seed=1, **kwargs)
        assert torch.isfinite(x).all()
        errors[steps] = moments_error(x)
    mean_err, cov_err = errors[many]
    assert mean_err < 0.1, errors
    assert cov_err < COV_TOL.get(name, 0.1), errors
    # more steps never hurt beyond Monte-Carlo noise (2000 samples: ~0.03 relative)
    assert cov_err <= max(errors[8][1], 0.06), errors


@pytest.mark.parametrize("name", sorted(DISTILLED))
def test_consistency_samplers_keep_the_mean_but_shrink_the_spread(name):
    """LCM/TCD re-noise the predicted x̂₀ with fresh noise at every step. That is right for a
    consistency-distilled model, whose x̂₀ is a sample; with the exact ε (a non-distilled model)
    x̂₀ = E[x₀|x_t] and the spread shrinks. The mean is still right."""
    scheduler, kwargs = build(name)
    x = run_sampler(scheduler, ExactModel(), 25, n=2000, seed=1, **kwargs)
    mean_err, _ = moments_error(x)
    assert mean_err < 0.1
    assert torch.cov(x.T).trace() < SIGMA.trace()


@pytest.mark.parametrize("name", ["DDIM", "Euler", "DPM++ 2M", "UniPC", "Heun", "Analytic-DDPM"])
def test_v_prediction_models_sample_the_same_distribution(name):
    config = {**CONFIG, "prediction_type": "v_prediction"}
    scheduler, kwargs = build(name, config)
    x = run_sampler(
        scheduler, ExactModel("v_prediction", config=config), 50, n=2000, seed=2, **kwargs
    )
    mean_err, cov_err = moments_error(x)
    assert mean_err < 0.1 and cov_err < 0.12


def _probability_flow(x_T: torch.Tensor, a_T: float) -> torch.Tensor:
    """The exact probability-flow ODE map x_T → x_0 for Gaussian data: all C_t share Σ's
    eigenvectors, so x_0 = μ + Σ^{1/2} C_T^{-1/2} (x_T − √ᾱ_T μ)."""
    w, v = torch.linalg.eigh(SIGMA)
    wt, vt = torch.linalg.eigh(cov_t(a_T))
    sqrt_s = (v * w.sqrt()) @ v.T
    inv_sqrt_c = (vt / wt.sqrt()) @ vt.T
    flat = x_T.reshape(len(x_T), -1).double()
    return MU + (flat - a_T**0.5 * MU) @ (sqrt_s @ inv_sqrt_c).T


def test_ddim_eta0_is_deterministic_and_solves_the_probability_flow_ode():
    x_T = torch.randn(500, 3, 1, 1, generator=torch.Generator().manual_seed(3))
    errors = []
    for steps in (10, 50, 250):
        scheduler, kwargs = build(
            "DDIM", {**CONFIG, "set_alpha_to_one": True}, timestep_spacing="trailing"
        )
        assert kwargs == {"eta": 0.0}
        a = run_sampler(scheduler, ExactModel(), steps, n=500, seed=1, x_T=x_T, **kwargs)
        if steps == 10:
            b = run_sampler(scheduler, ExactModel(), steps, n=500, seed=99, x_T=x_T, **kwargs)
            assert torch.equal(a, b)  # the generator is never used
        first = int(scheduler.timesteps[0])
        assert first == 999
        exact = _probability_flow(x_T, float(AC[first]))
        errors.append(float((a - exact).norm(dim=1).mean()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.02, errors
    # first order: 5x the steps, ~5x smaller error
    assert errors[1] / errors[2] > 3, errors


def test_ddim_eta1_is_stochastic():
    scheduler, kwargs = build("DDIM", eta=1.0)
    x_T = torch.randn(50, 3, 1, 1)
    a = run_sampler(scheduler, ExactModel(), 10, n=50, seed=1, x_T=x_T, **kwargs)
    b = run_sampler(scheduler, ExactModel(), 10, n=50, seed=2, x_T=x_T, **kwargs)
    assert not torch.equal(a, b)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_analytic_variance_is_the_closed_form_optimum(eta):
    """σ*² from Γ (Theorem 1) equals λ² + c₀² tr Cov(x₀|x_n)/d computed directly from the
    Gaussian posterior Cov(x₀|x_n) = (Σ⁻¹ + ᾱ/(1−ᾱ) I)⁻¹."""
    s = AnalyticDPMScheduler.from_config({**CONFIG, "eta": eta})
    s.set_timesteps(20)
    ts = s.timesteps.tolist()
    for t, prev in itertools.pairwise(ts):
        a_t, a_s = float(AC[t]), float(AC[prev])
        lam2 = s.lambda2(t, prev)
        c0 = a_s**0.5 - (1 - a_s - lam2) ** 0.5 * (a_t / (1 - a_t)) ** 0.5
        optimum = lam2 + c0**2 * posterior_cov_trace(a_t)
        assert s.optimal_variance(t, prev, exact_gamma(t, AC)) == pytest.approx(optimum, rel=1e-9)
        # Theorem 2's bounds hold for the optimum, and clip estimates outside them
        assert lam2 <= optimum <= s.optimal_variance(t, prev, 0.0) + 1e-15
        assert s.optimal_variance(t, prev, 1.5) == pytest.approx(lam2)


def test_monte_carlo_gamma_matches_the_closed_form():
    x0 = sample_data(4000, seed=4)
    model = ExactModel()
    ts = [10, 100, 400, 900]
    stats = estimate_eps_stats(
        lambda x, t, rows: model.eps(x, t),
        x0,
        ts,
        AC,
        generator=torch.Generator().manual_seed(0),
        batch=1000,
    )
    exact = torch.tensor([exact_gamma(t, AC) for t in ts], dtype=torch.float64)
    assert torch.allclose(stats.gamma, exact, rtol=0.05), (stats.gamma, exact)


def test_analytic_ddpm_beats_ddpm_at_few_steps():
    """The paper's claim in miniature: at 10 steps the optimal variance gets the spread far
    closer than DDPM's hand-picked one."""
    analytic, _ = build("Analytic-DDPM")
    ddpm, _ = build("DDPM")
    _, cov_analytic = moments_error(run_sampler(analytic, ExactModel(), 10, n=4000, seed=5))
    _, cov_ddpm = moments_error(run_sampler(ddpm, ExactModel(), 10, n=4000, seed=5))
    assert cov_analytic < 0.5 * cov_ddpm, (cov_analytic, cov_ddpm)


def test_analytic_scheduler_says_when_gamma_is_missing():
    s = AnalyticDPMScheduler.from_config(CONFIG)
    s.set_timesteps(10)
    assert s.missing_gammas() == s.timesteps.tolist()
    with pytest.raises(KeyError, match="analytic_fit"):
        s.step(torch.zeros(1, 3, 1, 1), s.timesteps[0], torch.zeros(1, 3, 1, 1))


def _calibration(model: ExactModel) -> CalibrationTable:
    ts = list(range(0, 1000, 111))
    stats = estimate_eps_stats(
        lambda x, t, rows: model.eps(x, t),
        sample_data(4000, seed=6),
        ts,
        AC,
        generator=torch.Generator().manual_seed(0),
        batch=1000,
    )
    return CalibrationTable(torch.tensor(ts), stats.mean, stats.mean)


def test_calibration_mean_is_zero_for_the_exact_model_and_the_bias_for_a_biased_one():
    exact = _calibration(ExactModel())
    assert exact.mean_cond.abs().max() < 0.05
    bias = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    biased = _calibration(ExactModel(bias=bias))
    assert torch.allclose(biased.mean_cond, bias.expand_as(biased.mean_cond), atol=0.05)
    # interpolation between grid points and clamping outside
    assert torch.allclose(biased.mean_at(500.5), bias, atol=0.05)
    assert torch.allclose(biased.mean_at(5000), biased.mean_cond[-1])


def test_calibrating_a_biased_model_fixes_its_samples():
    bias = torch.tensor([0.05, -0.05, 0.05], dtype=torch.float64)
    model = ExactModel(bias=bias)
    table = _calibration(model)

    def calibrated(x, t):
        return calibrate_output(model(x, t), float(torch.as_tensor(t)), table, cfg=False)

    raw = moments_error(run_sampler(build("DPM++ 2M")[0], model, 25, n=2000, seed=7))[0]
    fixed = moments_error(run_sampler(build("DPM++ 2M")[0], calibrated, 25, n=2000, seed=7))[0]
    assert fixed < 0.1 < raw, (raw, fixed)


def test_calibration_with_cfg_uses_each_halfs_mean():
    table = CalibrationTable(torch.tensor([0, 999]), torch.ones(2, 3), -torch.ones(2, 3))
    out = calibrate_output(torch.zeros(4, 3, 2, 2), 10.0, table, cfg=True)
    assert (out[:2] == 1).all() and (out[2:] == -1).all()  # [uncond; cond]
