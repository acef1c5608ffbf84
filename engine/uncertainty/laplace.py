"""Last-layer Laplace approximation (LLLA) over the UNet's final convolution.

BayesDiff (Kou et al. 2024, §3.1) makes only ``unet.conv_out`` Bayesian. With a Gaussian
likelihood of noise σ² on ε and a N(0, 1/λ) prior, the diagonal Laplace posterior around the
trained weights W* has precision

    P = λ + GGN / σ²,

and because ε̂ = conv(φ, W) + b is *linear* in (W, b), the generalised Gauss–Newton is exact and
closed-form: ∂ε̂_o(p)/∂W[o,i,dy,dx] = φ_i(p + (dy, dx)), so its diagonal is Σ_{n,p} φ_i(p+δ)²
(the same for every output channel o), and Σ_{n,p} 1 for the bias. φ is conv_out's input (after
the last GroupNorm and SiLU), captured with a forward pre-hook.

The predictive variance is then one extra convolution (Kou et al., Eq. 7):
Var_W[ε̂_o(p)] = Σ_{i,δ} φ_i(p+δ)² Var[W_o,i,δ] + Var[b_o] = conv(φ², Var[W]) + Var[b].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LastLayerPosterior:
    """Diagonal Gaussian over conv_out: mean = the trained weights, these variances."""

    weight_var: torch.Tensor  # (O, I, kh, kw)
    bias_var: torch.Tensor  # (O,)
    padding: tuple[int, int]

    def to(self, device, dtype=torch.float32) -> LastLayerPosterior:
        return LastLayerPosterior(
            self.weight_var.to(device, dtype), self.bias_var.to(device, dtype), self.padding
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        return {
            "weight_var": self.weight_var,
            "bias_var": self.bias_var,
            "padding": torch.tensor(self.padding, dtype=torch.int64),
        }

    @classmethod
    def from_tensors(cls, t: dict[str, torch.Tensor]) -> LastLayerPosterior:
        pad = tuple(int(x) for x in t["padding"].tolist())
        return cls(t["weight_var"].float(), t["bias_var"].float(), pad)  # type: ignore[arg-type]


class GGNAccumulator:
    """Σ over fit samples and output positions of the squared Jacobian of ε̂ w.r.t. (W, b)."""

    def __init__(self, conv: torch.nn.Conv2d) -> None:
        if conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.groups != 1:
            raise ValueError("conv_out must be a plain stride-1 convolution")
        self.kernel = conv.kernel_size
        self.padding = _padding(conv)
        self.out_channels = conv.out_channels
        self.weight = torch.zeros(conv.in_channels, *self.kernel, dtype=torch.float64)
        self.bias = 0.0
        self.samples = 0

    def add(self, phi: torch.Tensor) -> None:
        """Add a batch of conv_out inputs φ (N, I, h, w)."""
        sq = phi.detach().double().square()
        out_h = sq.shape[2] + 2 * self.padding[0] - self.kernel[0] + 1
        out_w = sq.shape[3] + 2 * self.padding[1] - self.kernel[1] + 1
        sq = F.pad(sq, (self.padding[1], self.padding[1], self.padding[0], self.padding[0]))
        for dy in range(self.kernel[0]):
            for dx in range(self.kernel[1]):
                self.weight[:, dy, dx] += (
                    sq[:, :, dy : dy + out_h, dx : dx + out_w].sum((0, 2, 3)).cpu()
                )
        self.bias += phi.shape[0] * out_h * out_w
        self.samples += phi.shape[0]

    def posterior(self, prior_precision: float = 1.0, noise: float = 1.0) -> LastLayerPosterior:
        """Diagonal Laplace posterior: variance = 1 / (λ + GGN/σ²)."""
        w = 1.0 / (prior_precision + self.weight / noise)
        w = w.unsqueeze(0).expand(self.out_channels, -1, -1, -1).contiguous()
        b = torch.full(
            (self.out_channels,), 1.0 / (prior_precision + self.bias / noise), dtype=torch.float64
        )
        return LastLayerPosterior(w.float(), b.float(), self.padding)


def predictive_variance(phi: torch.Tensor, post: LastLayerPosterior) -> torch.Tensor:
    """Var_W[ε̂] (N, O, h, w) for conv_out inputs φ (N, I, h, w): conv(φ², Var[W]) + Var[b].

    Under classifier-free guidance pass φ = (1−s)·φ_u + s·φ_c: both branches share one W, so
    ε̂_g = conv((1−s)φ_u + sφ_c, W) + b exactly, and this is its exact variance (the official
    code's (1−s)²Var_u + s²Var_c drops the covariance of the two branches)."""
    w = post.weight_var.to(phi.device, phi.dtype)
    b = post.bias_var.to(phi.device, phi.dtype)
    return F.conv2d(phi.square(), w, b, padding=post.padding)


def sample_weights(
    weight: torch.Tensor, bias: torch.Tensor, post: LastLayerPosterior, generator: torch.Generator
):
    """One draw (W, b) ~ N((weight, bias), Var) of conv_out's parameters around the trained
    ``weight``/``bias`` (pass copies: a layer already holding a draw would random-walk)."""
    w = weight.detach().float().cpu()
    b = bias.detach().float().cpu()
    zw = torch.randn(w.shape, generator=generator)
    zb = torch.randn(b.shape, generator=generator)
    return w + post.weight_var.sqrt() * zw, b + post.bias_var.sqrt() * zb


def _padding(conv: torch.nn.Conv2d) -> tuple[int, int]:
    if isinstance(conv.padding, str):
        if conv.padding == "same":
            return conv.kernel_size[0] // 2, conv.kernel_size[1] // 2
        return 0, 0
    return int(conv.padding[0]), int(conv.padding[1])
