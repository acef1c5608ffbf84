"""ε̂ and its weight-posterior variance Var_W[ε̂] from one UNet call, CFG included.

A forward pre-hook on ``unet.conv_out`` keeps its input φ; the predictive variance is then one
extra convolution (:func:`engine.uncertainty.laplace.predictive_variance`). With CFG the guided
φ is (1−s)·φ_u + s·φ_c because both branches share the same conv_out weights (exact).
v-prediction is turned into ε: ε = √ᾱ·v + √(1−ᾱ)·x_in, so Var_W[ε] = ᾱ·Var_W[v]
(engine/denoisers.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.denoisers import Prediction, alpha_sigma, eps_from_v, eps_scale, eps_variance_from_v
from engine.uncertainty.laplace import LastLayerPosterior, predictive_variance


@dataclass
class EpsOut:
    raw: torch.Tensor  # the guided model output in the scheduler's prediction type
    eps: torch.Tensor  # the guided output as ε (float32)
    var: torch.Tensor  # Var_W[ε] (float32, ≥ 0)
    phi: torch.Tensor  # the (guided) input of conv_out, float32; ε-scaled for v-models


class EpsModel:
    """Call the UNet on a batch whose rows cycle through ``cond``'s rows (one per image)."""

    def __init__(
        self,
        unet,
        post: LastLayerPosterior,
        cond: torch.Tensor,
        uncond: torch.Tensor | None,
        guidance: float,
        prediction_type: str,
    ) -> None:
        self.unet = unet
        self.post = post.to(unet.device)
        self.cond = cond
        self.uncond = uncond  # None: no CFG (guidance ≤ 1, as diffusers' pipeline does)
        self.guidance = guidance
        self.prediction_type = prediction_type
        self.calls = 0

    def bias_scale(self, abar: float) -> float:
        """How a change of conv_out's bias shows in ε (√ᾱ for v-models, like ``phi``)."""
        return eps_scale(self.prediction_type, alpha_sigma(abar)[0])

    def __call__(self, x_in: torch.Tensor, t, abar: float) -> EpsOut:
        """``x_in``: the scaled model input (N, C, h, w), N a multiple of the image count."""
        unet = self.unet
        reps = x_in.shape[0] // self.cond.shape[0]
        cond = self.cond.repeat(reps, 1, 1)
        phis: list[torch.Tensor] = []
        handle = unet.conv_out.register_forward_pre_hook(lambda _m, args: phis.append(args[0]))
        try:
            with torch.no_grad():
                if self.uncond is not None:
                    emb = torch.cat([self.uncond.repeat(reps, 1, 1), cond])
                    out = unet(torch.cat([x_in, x_in]), t, encoder_hidden_states=emb).sample
                    u, c = out.chunk(2)
                    raw = u + self.guidance * (c - u)
                    pu, pc = phis[0].float().chunk(2)
                    phi = pu + self.guidance * (pc - pu)
                else:
                    raw = unet(x_in, t, encoder_hidden_states=cond).sample
                    phi = phis[0].float()
        finally:
            handle.remove()
        self.calls += 1
        var = predictive_variance(phi, self.post).clamp_min(0)
        eps = raw.float()
        if self.prediction_type == Prediction.V:
            alpha, sigma = alpha_sigma(abar)
            eps = eps_from_v(eps, x_in.float(), alpha, sigma)
            var = eps_variance_from_v(var, abar)
            phi = eps_scale(Prediction.V, alpha) * phi
        elif self.prediction_type != Prediction.EPSILON:
            raise ValueError(f"uncertainty needs an ε or v model, not {self.prediction_type!r}")
        return EpsOut(raw, eps, var, phi)
