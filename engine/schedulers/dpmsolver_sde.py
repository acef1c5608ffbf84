"""DPM++ SDE whose Brownian-tree noise follows the job's seed, in every dtype.

diffusers' :class:`~diffusers.DPMSolverSDEScheduler` has two faults for an app that promises
"same recipe, same image":

- its Brownian tree is seeded from ``noise_sampler_seed``, which no pipeline sets: without it
  the tree takes a fresh random seed on every call, so the image of a seed changes every run;
- the tree is drawn in the latents' dtype, so one seed gives one image in float32 and another in
  float16 or bfloat16 (torchsde samples a different sequence per dtype).

Here ``step`` takes the pipeline's ``generator`` (diffusers' pipelines pass it to any scheduler
whose ``step`` accepts one) and seeds one tree per image from each generator's seed; the tree is
always float32 and its increments are cast to the latents' dtype.
"""

from __future__ import annotations

import diffusers
import torch
from diffusers.schedulers.scheduling_dpmsolver_sde import BrownianTreeNoiseSampler


class _Float32Noise:
    def __init__(self, sampler: BrownianTreeNoiseSampler, dtype: torch.dtype) -> None:
        self.sampler, self.dtype = sampler, dtype

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        return self.sampler(sigma, sigma_next).to(self.dtype)


def _seeds(generator, batch: int):
    gens = generator if isinstance(generator, list) else [generator] if generator else []
    if len(gens) == batch:
        return [int(g.initial_seed()) for g in gens]
    if len(gens) == 1:
        # One generator for the whole batch: one tree for the batch, as diffusers seeds it (a
        # tree per row would cost one Brownian tree per image: minutes for a batch of 2,000).
        return int(gens[0].initial_seed())
    return None


class DPMSolverSDEScheduler(diffusers.DPMSolverSDEScheduler):
    def step(
        self,
        model_output,
        timestep,
        sample,
        return_dict: bool = True,
        s_noise: float = 1.0,
        generator=None,
    ):
        if self.noise_sampler is None:
            seed = self.noise_sampler_seed
            if seed is None:
                seed = _seeds(generator, sample.shape[0])
            positive = self.sigmas[self.sigmas > 0]
            self.noise_sampler = _Float32Noise(
                BrownianTreeNoiseSampler(
                    sample.float(), positive.min().item(), self.sigmas.max().item(), seed
                ),
                sample.dtype,
            )
        return super().step(
            model_output, timestep, sample, return_dict=return_dict, s_noise=s_noise
        )
