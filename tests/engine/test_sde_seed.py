"""DPM++ SDE (engine/schedulers/dpmsolver_sde.py): the Brownian noise follows the generators'
seeds and does not depend on the latents' dtype."""

import torch

from engine.schedulers import DPMSolverSDEScheduler


def _run(dtype, seeds):
    sched = DPMSolverSDEScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    sched.set_timesteps(4)
    x = torch.ones(len(seeds), 4, 8, 8, dtype=dtype)
    eps = torch.full_like(x, 0.1)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    for t in sched.timesteps:
        x = sched.step(eps, t, x, generator=gens).prev_sample
    return x.float()


def test_same_seed_same_noise_in_every_dtype():
    a, b = _run(torch.float32, [1, 2]), _run(torch.float32, [1, 2])
    assert torch.equal(a, b)  # diffusers' own draws a fresh random tree every call
    assert not torch.allclose(a[0], a[1])  # one tree per image
    assert not torch.allclose(a, _run(torch.float32, [3, 4]))
    half = _run(torch.bfloat16, [1, 2])
    assert (half - a).abs().max() < 0.1 * a.abs().max()  # rounding, not another draw
