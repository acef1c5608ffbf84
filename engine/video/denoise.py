"""The model calls of video editing: text and frame encoding, ε with ControlNet and CFG, and
deterministic DDIM (η = 0) both ways, keeping every latent.

DDIM (Song et al. 2021, eq. 12 with σ_t = 0) on a grid ᾱ_0 = 1 > ᾱ_{t_1} > … > ᾱ_{t_S}:

    x̂_0 = (z_i − √(1−ᾱ_i) ε) / √ᾱ_i,    z_j = √ᾱ_j x̂_0 + √(1−ᾱ_j) ε

Sampling goes i → i−1 with ε = ε_θ(z_i, t_i). Inversion goes i−1 → i with ε = ε_θ(z_{i−1}, t_i)
(the usual approximation ε_θ(z_{i−1}) ≈ ε_θ(z_i)); it is exact as the step size → 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.denoisers import Prediction, alpha_sigma, noised, to_eps, x0_from_eps
from engine.errors import EngineError
from engine.video.attention import FrameLayout

StepHook = Callable[[int], None]


@dataclass
class VideoNets:
    unet: object
    vae: object
    text_encoder: object
    tokenizer: object
    controlnet: object | None
    scheduler_config: dict
    device: torch.device
    dtype: torch.dtype
    layout: FrameLayout = field(default_factory=FrameLayout)
    frame_chunk: int = 0

    @classmethod
    def of(cls, pipe, controlnet, scheduler_config: dict, device, dtype, **options) -> VideoNets:
        """The networks of a loaded Stable Diffusion ``pipe`` with ``controlnet`` (None: no
        control); ``options`` are the other fields (``frame_chunk``, ``layout``)."""
        return cls(
            pipe.unet,
            pipe.vae,
            pipe.text_encoder,
            pipe.tokenizer,
            controlnet,
            dict(scheduler_config),
            torch.device(device),
            dtype,
            **options,
        )

    @property
    def prediction_type(self) -> str:
        return self.scheduler_config.get("prediction_type", "epsilon")

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        from diffusers import DDIMScheduler

        return DDIMScheduler.from_config(self.scheduler_config).alphas_cumprod.double()


def load_controlnet(path: Path, device, dtype):
    from diffusers import ControlNetModel

    try:
        net = ControlNetModel.from_pretrained(str(path), torch_dtype=dtype)
    except (OSError, ValueError) as exc:
        raise EngineError(
            f"{path} is not a ControlNet diffusers can load ({exc})", "control.controlnet"
        ) from None
    return net.to(device).eval().requires_grad_(False)


# --------------------------------------------------------------------------- encoders


@torch.no_grad()
def text_embeddings(nets: VideoNets, prompt: str) -> torch.Tensor:
    """(1, 77, C): one 75-token chunk, A1111's weights and BREAK (engine.prompts)."""
    from engine.prompts.encode import embed_prompts, single_encoder

    encoder = single_encoder(nets.tokenizer, nets.text_encoder)
    return embed_prompts([encoder], [prompt], nets.device, max_chunks=1).to(nets.dtype)


def token_indices(tokenizer, prompt: str, phrase: str) -> list[int]:
    """Positions (in the padded sequence, after BOS) of the phrase's tokens in the prompt, every
    occurrence of each word (the official mask takes every prompt token the phrase holds)."""
    ids = tokenizer(prompt, truncation=True).input_ids
    found: list[int] = []
    for word in phrase.split():
        wids = tokenizer(word, add_special_tokens=False).input_ids
        for s in range(len(ids) - len(wids) + 1):
            if wids and ids[s : s + len(wids)] == wids:
                found += range(s, s + len(wids))
    return sorted(set(found))


def _chunks(n: int, size: int):
    size = size or n
    for a in range(0, n, size):
        yield slice(a, min(n, a + size))


@torch.no_grad()
def encode_frames(nets: VideoNets, frames: np.ndarray) -> torch.Tensor:
    """(F, H, W, 3) uint8 → latents (F, 4, H/8, W/8), scaled, the VAE's mean."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    scale = getattr(nets.vae.config, "scaling_factor", 1.0) or 1.0
    out = []
    for sl in _chunks(len(x), nets.frame_chunk):
        dist = nets.vae.encode(x[sl].to(nets.device, nets.vae.dtype)).latent_dist
        out.append(dist.mean.float() * scale)
    return torch.cat(out)


@torch.no_grad()
def decode_latents(nets: VideoNets, z: torch.Tensor) -> np.ndarray:
    """Latents (F, 4, h, w) → (F, H, W, 3) uint8 frames. Latents that are not finite fail the
    job: decoded, they would be a black video reported as done."""
    if not bool(torch.isfinite(z).all()):
        dtype = str(nets.dtype).removeprefix("torch.")
        raise EngineError(
            f"The edit's latents became NaN/inf while denoising in {dtype}, so no video was "
            "written. Run the engine in float32 (sfumato-engine --dtype fp32) and try again.",
            "params",
        )
    scale = getattr(nets.vae.config, "scaling_factor", 1.0) or 1.0
    out = []
    for sl in _chunks(len(z), nets.frame_chunk):
        img = nets.vae.decode((z[sl] / scale).to(nets.device, nets.vae.dtype)).sample
        out.append(
            ((img.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu()
        )
    return torch.cat(out).numpy()


def control_tensor(maps: np.ndarray, nets: VideoNets) -> torch.Tensor:
    return torch.from_numpy(maps).permute(0, 3, 1, 2).to(nets.device, nets.dtype).div(255)


# --------------------------------------------------------------------------- ε


def predict_eps(
    nets: VideoNets,
    z: torch.Tensor,
    t: int,
    cond: torch.Tensor,
    control: torch.Tensor | None = None,
    control_scale: float = 1.0,
    cfg: float = 1.0,
    uncond: torch.Tensor | None = None,
    alpha: float | None = None,
) -> torch.Tensor:
    """ε_θ for F frames (one video) at timestep ``t``; with CFG (cfg > 1 and ``uncond``) the
    batch is [F unconditional, F conditional] and ε = ε_u + cfg·(ε_c − ε_u). v- and
    x₀-prediction models are converted to ε with ``alpha`` = ᾱ_t."""
    f = z.shape[0]
    guided = cfg != 1.0 and uncond is not None
    zin = torch.cat([z, z]) if guided else z
    emb = (
        torch.cat([uncond.expand(f, -1, -1), cond.expand(f, -1, -1)])
        if guided
        else cond.expand(f, -1, -1)
    )
    zin = zin.to(nets.dtype)
    nets.layout.frames = f
    tt = torch.full((zin.shape[0],), t, device=nets.device, dtype=torch.long)
    kwargs = {}
    if nets.controlnet is not None and control is not None:
        c = torch.cat([control, control]) if guided else control
        down, mid = nets.controlnet(
            zin,
            tt,
            encoder_hidden_states=emb,
            controlnet_cond=c,
            conditioning_scale=control_scale,
            return_dict=False,
        )
        kwargs = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
    out = nets.unet(zin, tt, encoder_hidden_states=emb, **kwargs).sample.float()
    if nets.prediction_type != Prediction.EPSILON:  # v or x̂₀ → ε̂ (engine/denoisers.py)
        if alpha is None:
            raise ValueError(f"{nets.prediction_type} needs alpha")
        out = to_eps(nets.prediction_type, out, zin.float(), *alpha_sigma(alpha))
    if guided:
        e_u, e_c = out.chunk(2)
        return e_u + cfg * (e_c - e_u)
    return out


# --------------------------------------------------------------------------- DDIM


@dataclass
class DdimGrid:
    timesteps: list[int]  # t_1 < … < t_S (index i-1 for step i)
    alphas: list[float]  # ᾱ_0 = 1, ᾱ_{t_1}, …, ᾱ_{t_S}

    @property
    def steps(self) -> int:
        return len(self.timesteps)


def ddim_grid(nets: VideoNets, steps: int) -> DdimGrid:
    from diffusers import DDIMScheduler

    sched = DDIMScheduler.from_config(nets.scheduler_config)
    sched.set_timesteps(steps)
    ts = sorted(int(t) for t in sched.timesteps)
    ac = sched.alphas_cumprod.double()
    return DdimGrid(ts, [1.0] + [float(ac[t]) for t in ts])


def ddim_step(z: torch.Tensor, eps: torch.Tensor, a_from: float, a_to: float) -> torch.Tensor:
    """Move z from ᾱ = a_from to ᾱ = a_to along the deterministic DDIM path (eq. 12, σ = 0)."""
    x0 = x0_from_eps(eps, z, *alpha_sigma(a_from))
    return noised(x0, eps, *alpha_sigma(a_to))


@torch.no_grad()
def ddim_invert(
    nets: VideoNets,
    z0: torch.Tensor,
    grid: DdimGrid,
    cond: torch.Tensor,
    control: torch.Tensor | None = None,
    control_scale: float = 1.0,
    on_step: StepHook | None = None,
) -> list[torch.Tensor]:
    """DDIM inversion with the conditional model only; returns [z_0, z_1, …, z_S]."""
    zs = [z0.float()]
    for i in range(1, grid.steps + 1):
        a = grid.alphas[i]
        eps = predict_eps(
            nets, zs[-1], grid.timesteps[i - 1], cond, control, control_scale, alpha=a
        )
        zs.append(ddim_step(zs[-1], eps, grid.alphas[i - 1], a))
        if on_step:
            on_step(i)
    return zs


FuseHook = Callable[[int, torch.Tensor], torch.Tensor]


@torch.no_grad()
def ddim_sample(
    nets: VideoNets,
    z_T: torch.Tensor,
    grid: DdimGrid,
    cond: torch.Tensor,
    control: torch.Tensor | None = None,
    control_scale: float = 1.0,
    cfg: float = 1.0,
    uncond: torch.Tensor | None = None,
    fuse: FuseHook | None = None,
    on_step: StepHook | None = None,
) -> torch.Tensor:
    """DDIM from z_S to z_0. ``fuse(k, z)`` (k = 0-based sampling step) edits the latent after ε
    is predicted and before the step, as LOVECon's latent fusion needs."""
    z = z_T.float()
    for k, i in enumerate(range(grid.steps, 0, -1)):
        eps = predict_eps(
            nets,
            z,
            grid.timesteps[i - 1],
            cond,
            control,
            control_scale,
            cfg,
            uncond,
            alpha=grid.alphas[i],
        )
        if fuse is not None:
            z = fuse(k, z)
        z = ddim_step(z, eps, grid.alphas[i], grid.alphas[i - 1])
        if on_step:
            on_step(k + 1)
    return z
