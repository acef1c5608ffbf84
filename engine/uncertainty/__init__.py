"""BayesDiff (Kou et al., ICLR 2024): per-pixel uncertainty of a diffusion model's samples.

- :mod:`.laplace` — the last-layer Laplace posterior over ``unet.conv_out`` and its closed-form
  predictive variance (math only, no transport).
- :mod:`.eps_model` — ε̂ and Var_W[ε̂] from one UNet call (CFG-exact), via a hook on ``conv_out``.
- :mod:`.propagate` — mean/variance of x_t through DDIM and DPM-Solver-2, with the skip trick.
- :mod:`.pixel_map` — M latent samples decoded in one VAE batch → per-pixel variance and score.
- :mod:`.fit_job`, :mod:`.generate` — the ``uncertainty_fit`` job and generation with maps.
"""
