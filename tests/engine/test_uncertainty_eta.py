"""BayesDiff with η > 0: propagated Var[x₀] through DDIM against Monte-Carlo ground truth that
draws both what is uncertain — the conv_out weights from the Laplace posterior and the step
noise σ_t·z — once per run, through the real diffusers pipeline from the same x_T.

The step noise adds σ_t² to Var[x_{t−1}] (engine/uncertainty/propagate.py: each particle an
independent sample path, V their spread). Without it the propagated variance is the weights'
part alone; the test checks that this would fall far short, so it can fail. Small for CI: 64 px,
8 steps, 32 runs, S = 16."""

import pytest
import torch

import engine.uncertainty.propagate as propagate_module
from engine.uncertainty.eps_model import EpsModel
from engine.uncertainty.laplace import LastLayerPosterior, sample_weights
from engine.uncertainty.propagate import propagate
from tests.engine.test_uncertainty_propagation import CFG, PROMPT, _scheduler, setup  # noqa: F401

pytestmark = pytest.mark.slow
STEPS, RUNS, S = 8, 32, 16


def _x_T(pipe):
    return pipe.prepare_latents(
        1, 4, 64, 64, torch.float32, "cpu", [torch.Generator().manual_seed(1)]
    )


def _monte_carlo(pipe, post, eta: float) -> torch.Tensor:
    """Var over RUNS runs of x₀, each with its own weight draw and its own η-noise seed."""
    pipe.scheduler = _scheduler(pipe, "DDIM")
    conv = pipe.unet.conv_out
    w0, b0 = conv.weight.data.clone(), conv.bias.data.clone()
    g = torch.Generator().manual_seed(3)
    outs = []
    try:
        for run in range(RUNS):
            w, b = sample_weights(w0, b0, post, g)
            conv.weight.data.copy_(w)
            conv.bias.data.copy_(b)
            out = pipe(
                PROMPT,
                num_inference_steps=STEPS,
                guidance_scale=CFG,
                width=64,
                height=64,
                latents=_x_T(pipe),
                eta=eta,
                output_type="latent",
                generator=torch.Generator().manual_seed(1000 + run),
            )
            outs.append(out.images)
    finally:
        conv.weight.data.copy_(w0)
        conv.bias.data.copy_(b0)
    return torch.cat(outs).var(0, keepdim=True)


def _propagated(pipe, model, eta: float, skip: int = 1):
    sched = _scheduler(pipe, "DDIM")
    pipe.scheduler = sched
    sched.set_timesteps(STEPS)
    kwargs = {"eta": eta, "generator": torch.Generator().manual_seed(7)}
    return propagate(
        model,
        sched,
        _x_T(pipe),
        samples=S,
        skip=skip,
        step_kwargs=kwargs,
        generator=torch.Generator().manual_seed(0),
    )


@pytest.fixture(scope="module")
def narrow(setup):  # noqa: F811
    """The posterior ×0.01: as narrow as a fit on a few hundred images makes it, so that the
    step noise, not the weights, dominates Var[x₀] (the wide test posterior hides it)."""
    pipe, post, model = setup
    post = LastLayerPosterior(post.weight_var * 0.01, post.bias_var * 0.01, post.padding)
    return pipe, post, EpsModel(pipe.unet, post, model.cond, model.uncond, CFG, "epsilon")


_MC: dict[float, torch.Tensor] = {}


@pytest.mark.parametrize("eta, skip", [(0.5, 1), (1.0, 1), (1.0, 5)])
def test_propagated_variance_with_eta_matches_monte_carlo(narrow, eta, skip, monkeypatch):
    pipe, post, model = narrow
    if eta not in _MC:
        _MC[eta] = _monte_carlo(pipe, post, eta)
    mc = _MC[eta]
    prop = _propagated(pipe, model, eta, skip)
    ratio = float(prop.var.mean() / mc.mean())
    corr = float(torch.corrcoef(torch.stack([prop.var.flatten(), mc.flatten()]))[0, 1])
    assert prop.var.min() >= 0 and torch.isfinite(prop.var).all()
    # Measured (seeds 0, 1; S = 16): ratio 1.39–1.47, correlation 0.80–0.82 at η = 1, skip 1.
    # Two 32-run Monte-Carlo estimates differ by ~1.4× themselves (test_uncertainty_propagation).
    assert 0.5 < ratio < 2.0 and corr > 0.5, (eta, skip, ratio, corr)
    if skip == 1:
        # Without the step noise (the propagation before issue 20) it falls far short.
        real = propagate_module._stage

        def without_noise(*a):
            st = real(*a)
            st.noise_var = 0.0
            return st

        monkeypatch.setattr(propagate_module, "_stage", without_noise)
        quiet = _propagated(pipe, model, eta, skip)
        assert float(quiet.var.mean() / mc.mean()) < 0.6
