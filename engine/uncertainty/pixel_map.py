"""Per-pixel variance maps and scores (BayesDiff, Kou et al. §3.3)."""

from __future__ import annotations

import torch


def latent_samples(
    mean: torch.Tensor, var: torch.Tensor, m: int, generator: torch.Generator
) -> torch.Tensor:
    """M draws z ~ N(E[x₀], Var[x₀]) per image: (M·B, C, h, w), draw-major."""
    z = torch.randn((m, *mean.shape), generator=generator).to(mean.device)
    return (mean.float().unsqueeze(0) + var.clamp_min(0).sqrt().unsqueeze(0) * z).flatten(0, 1)


def decode(vae, latents: torch.Tensor, dtype, unit: bool = True) -> torch.Tensor:
    """Latents (scaled as the sampler holds them) → images in [0, 1] (``unit``; else the VAE's
    raw [-1, 1] output, as diffusers' postprocessing wants it), one VAE batch."""
    scale = getattr(vae.config, "scaling_factor", 1.0) or 1.0
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    with torch.no_grad():
        img = vae.decode((latents / scale + shift).to(vae.device, dtype)).sample
    return (img.float() / 2 + 0.5).clamp(0, 1) if unit else img


def pixel_variance(images: torch.Tensor, m: int) -> torch.Tensor:
    """(M·B, 3, H, W) draw-major decodes → (B, H, W): unbiased variance over the M draws,
    averaged over R, G, B (pixel units, [0, 1]²)."""
    x = images.view(m, -1, *images.shape[1:])
    if m < 2:
        return torch.zeros(x.shape[1], *x.shape[3:])
    return x.var(0, unbiased=True).mean(1)


def pixel_score(pixel_map: torch.Tensor) -> float:
    """Score from the decodes: the mean per-pixel variance of one image's map."""
    return float(pixel_map.double().mean())


def latent_score(var: torch.Tensor) -> float:
    """BayesDiff's official score (``var_sum`` in karrykkk/BayesDiff): the sum of one image's
    Var[x₀] (C, h, w) over the latent."""
    return float(var.double().clamp_min(0).sum())
