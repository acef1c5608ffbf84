"""Flow-matching Heun that takes the arguments Flux's pipeline passes.

diffusers' ``FlowMatchHeunDiscreteScheduler.set_timesteps`` takes neither ``sigmas`` nor ``mu``,
and ``FluxPipeline`` always passes both (its σ grid ``linspace(1, 1/n, n)`` and the
resolution-dependent shift μ), so Heun could not run Flux at all. Here ``mu`` becomes the
shift it stands for and ``sigmas`` replace the grid:

    σ' = e^μ·σ / (1 + (e^μ − 1)·σ)      (Flux's exponential time shift with exponent 1, which
                                         is the SD3 shift s·σ/(1 + (s−1)·σ) with s = e^μ;
                                         Esser et al. 2024, eq. 23)

Two model calls per step, as Heun always has (Karras et al. 2022, Alg. 1).
"""

from __future__ import annotations

import math

import numpy as np
from diffusers import FlowMatchHeunDiscreteScheduler
from diffusers.configuration_utils import register_to_config


class FlowHeunScheduler(FlowMatchHeunDiscreteScheduler):
    """``use_dynamic_shifting``: shift by e^μ when the pipeline passes μ (Flux), as
    ``FlowMatchEulerDiscreteScheduler`` does; else by the configured ``shift`` (SD3)."""

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        shift: float = 1.0,
        use_dynamic_shifting: bool = False,
    ) -> None:
        super().__init__(num_train_timesteps=num_train_timesteps, shift=shift)

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device=None,
        sigmas=None,
        mu: float | None = None,
    ) -> None:
        import torch

        if sigmas is None and not (mu is not None and self.config.use_dynamic_shifting):
            return super().set_timesteps(num_inference_steps, device)
        dynamic = mu is not None and self.config.use_dynamic_shifting
        shift = math.exp(mu) if dynamic else self.config.shift
        if sigmas is None:
            n = num_inference_steps
            sigmas = np.linspace(self.sigma_max, self.sigma_min, n)
        sigmas = np.asarray(sigmas, dtype=np.float64)
        num_inference_steps = len(sigmas)
        self.num_inference_steps = num_inference_steps
        sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
        sigmas = torch.from_numpy(sigmas).to(dtype=torch.float32, device=device)
        timesteps = sigmas * self.config.num_train_timesteps
        self.timesteps = torch.cat([timesteps[:1], timesteps[1:].repeat_interleave(2)])
        sigmas = torch.cat([sigmas, torch.zeros(1, device=sigmas.device)])
        self.sigmas = torch.cat([sigmas[:1], sigmas[1:-1].repeat_interleave(2), sigmas[-1:]])
        self.prev_derivative = None
        self.dt = None
        self._step_index = None
        self._begin_index = None
