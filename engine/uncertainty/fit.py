"""Fitting the last-layer Laplace posterior on a fit set (math; the job wraps it)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from engine.uncertainty.laplace import GGNAccumulator, LastLayerPosterior


def fit_posterior(
    unet,
    x0: torch.Tensor,
    embeds: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    *,
    prior_precision: float = 1.0,
    noise: float = 1.0,
    generator: torch.Generator | None = None,
    batch: int = 32,
    on_batch: Callable[[int, int], None] | None = None,
) -> LastLayerPosterior:
    """Diagonal LLLA over ``unet.conv_out``: each x₀ (N, C, h, w, latents) is noised to one
    uniformly drawn training timestep, x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε, and the UNet runs under its
    caption's embedding (``embeds`` (N, L, D), or one row for all); φ² of conv_out's input is
    summed into the GGN diagonal (BayesDiff fits the same way, with random timesteps)."""
    gen = generator or torch.Generator().manual_seed(0)
    acc = GGNAccumulator(unet.conv_out)
    device, dtype = unet.device, unet.dtype
    n = len(x0)
    T = len(alphas_cumprod)
    handle = unet.conv_out.register_forward_pre_hook(lambda _m, args: acc.add(args[0]))
    try:
        for i in range(0, n, batch):
            x = x0[i : i + batch].float()
            t = torch.randint(0, T, (len(x),), generator=gen)
            eps = torch.randn(x.shape, generator=gen)
            a = alphas_cumprod[t].float().view(-1, 1, 1, 1)
            xt = a.sqrt() * x + (1 - a).sqrt() * eps
            emb = embeds[i : i + batch] if embeds.shape[0] > 1 else embeds.expand(len(x), -1, -1)
            with torch.no_grad():
                unet(
                    xt.to(device, dtype), t.to(device), encoder_hidden_states=emb.to(device, dtype)
                )
            if on_batch is not None:
                on_batch(min(i + batch, n), n)
    finally:
        handle.remove()
    return acc.posterior(prior_precision, noise)
