"""BayesDiff math on the embedded model: closed-form predictive variance against Monte-Carlo
over weight draws from the posterior, with and without CFG."""

from pathlib import Path

import pytest
import torch

from engine.uncertainty.laplace import GGNAccumulator, predictive_variance, sample_weights

TINY = Path(__file__).resolve().parents[2] / "resources" / "models" / "sfumato-tiny"
DRAWS = 8000  # weight draws: a per-element variance estimate to ±1.6 % (1σ)


@pytest.fixture(scope="module")
def unet_and_phis():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    torch.set_num_threads(1)
    unet = UNet2DConditionModel.from_pretrained(TINY / "unet").eval()
    phis = []
    hook = unet.conv_out.register_forward_pre_hook(lambda _m, a: phis.append(a[0].detach()))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 16, 16, generator=g).repeat(2, 1, 1, 1)  # CFG: one x_t, two prompts
    emb = torch.randn(2, 77, unet.config.cross_attention_dim, generator=g)
    with torch.no_grad():
        out = unet(x, torch.tensor(500), encoder_hidden_states=emb).sample
    hook.remove()
    acc = GGNAccumulator(unet.conv_out)
    acc.add(phis[0][:1])  # one image's curvature: a wide posterior, so the test has teeth
    post = acc.posterior(prior_precision=1.0, noise=1.0)
    return unet, phis[0], out, post


def _mc_eps(unet, post, phi_list, weights_fn, draws=DRAWS, chunk=500):
    """ε̂ = Σ w_j·conv(φ_j, W) + b for `draws` weight samples: their empirical variance."""
    g = torch.Generator().manual_seed(2)
    conv = unet.conv_out
    s1 = s2 = 0
    for _ in range(draws // chunk):
        ws, bs = zip(
            *(sample_weights(conv.weight, conv.bias, post, g) for _ in range(chunk)), strict=True
        )
        W = torch.cat(ws)  # (chunk·O, I, 3, 3): one convolution for all draws
        b = torch.cat(bs)
        out = sum(
            wj * torch.nn.functional.conv2d(phi, W, padding=1)
            for wj, phi in zip(weights_fn, phi_list, strict=True)
        ) + b.view(1, -1, 1, 1)
        out = out.view(out.shape[0], chunk, -1, *out.shape[2:])
        s1 = s1 + out.double().sum(1)
        s2 = s2 + out.double().square().sum(1)
    mean = s1 / draws
    return (s2 / draws - mean.square()) * draws / (draws - 1)


def test_conv_out_is_the_last_layer(unet_and_phis):
    # The closed form is exact only if ε̂ is conv_out(φ) with nothing after it.
    unet, phi, out, _ = unet_and_phis
    again = unet.conv_out(phi)
    assert torch.allclose(again, out, atol=1e-5)


def test_closed_form_variance_matches_monte_carlo_over_weights(unet_and_phis):
    unet, phi, _, post = unet_and_phis
    phi = phi[:1]
    closed = predictive_variance(phi, post).double()
    mc = _mc_eps(unet, post, [phi], [1.0])
    assert closed.min() >= 0
    rel = (closed - mc).abs() / mc
    assert abs(closed.sum() / mc.sum() - 1) < 0.02
    assert rel.median() < 0.02, float(rel.median())


def test_cfg_variance_is_exact_for_shared_weights(unet_and_phis):
    unet, phi, _, post = unet_and_phis
    s = 7.5
    phi_u, phi_c = phi[:1], phi[1:]
    closed = predictive_variance((1 - s) * phi_u + s * phi_c, post).double()
    mc = _mc_eps(unet, post, [phi_u, phi_c], [1 - s, s])
    rel = (closed - mc).abs() / mc
    assert abs(closed.sum() / mc.sum() - 1) < 0.02
    assert rel.median() < 0.02, float(rel.median())
    # Treating the branches as independent, as the official code does, is measurably off.
    naive = (
        (1 - s) ** 2 * predictive_variance(phi_u, post) + s**2 * predictive_variance(phi_c, post)
    ).double()
    assert abs(naive.sum() / mc.sum() - 1) > 0.05


def test_ggn_matches_autograd_jacobian(unet_and_phis):
    """The closed-form GGN diagonal equals Σ (∂ε̂/∂θ)² from autograd, output by output."""
    unet, phi, _, _ = unet_and_phis
    conv = unet.conv_out
    x = phi[:1, :, :6, :6].clone()  # small: a 6×6 patch → 4·36 outputs
    acc = GGNAccumulator(conv)
    acc.add(x)
    w = conv.weight.detach().clone().requires_grad_(True)
    b = conv.bias.detach().clone().requires_grad_(True)
    out = torch.nn.functional.conv2d(x, w, b, padding=1)
    gw = torch.zeros_like(w)
    gb = torch.zeros_like(b)
    for o in out.flatten():
        dw, db = torch.autograd.grad(o, (w, b), retain_graph=True)
        gw += dw.square()
        gb += db.square()
    assert torch.allclose(gw[0].double(), acc.weight, rtol=1e-4, atol=1e-6)
    assert torch.allclose(gw[1].double(), acc.weight, rtol=1e-4, atol=1e-6)
    assert float(gb[0]) == acc.bias
