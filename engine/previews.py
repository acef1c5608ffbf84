"""Previews during sampling: the real VAE where it is cheap, else a smooth linear projection.

Two ways from a latent to a picture (measured in docs/performance.md, "Previews"):

- **VAE decode** — the image the run would give if it stopped now. For a small VAE (the
  built-in model's: a 16×16 latent decodes in milliseconds on a CPU) this is the only preview
  worth watching. Whether a job gets it is decided per latent size from a decode timed when the
  model loads and updated by every decode since: the estimated decode time must stay within
  :data:`DECODE_BUDGET_S` (a fifth of the preview interval) or :data:`DECODE_SHARE` of the
  time since the previous preview, whichever is more — previews never take more than a fifth
  of a run, on an idle or a busy machine.
- **Linear projection** — for big models (an SD VAE decode costs ~0.1–1 s on a CPU): a
  least-squares map from latent channels to RGB, fitted once per VAE by encoding solid colours
  (works for any VAE without per-model constants), upsampled *bilinearly* to the preview size
  (not 8×8 blocks).

Both first bring the latent to the spread of a clean one: early in sampling the latent is
mostly noise with a standard deviation up to σ_max ≈ 14 (Karras et al. 2022, eq. 5:
x = y + σ·n), and mapping it as is gives saturated confetti. Rescaling its deviation from the
mean to the clean latents' (measured at fit time) keeps colours in range from the first step,
and the picture emerges as σ falls.
"""

from __future__ import annotations

import base64
import functools
import io
import time
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np

#: Seconds a preview's decode may always take: a fifth of JobContext.PREVIEW_INTERVAL_S.
DECODE_BUDGET_S = 0.05
#: …or this share of the time since the previous preview, when sampling is slower than that
#: (a busy CPU slows sampling and decoding alike: the share of time previews take stays put).
DECODE_SHARE = 0.2
#: A latent wider than this many times the clean spread is toned down (see toned()).
NOISE_SPREAD = 2.0
#: Longest side of a preview sent to the app.
MAX_SIDE = 256


@dataclass
class LatentPreviewer:
    weight: np.ndarray  # (C, 3)
    bias: np.ndarray  # (3,)
    #: Standard deviation of clean (encoded) scaled latents, per channel (C,).
    clean_std: np.ndarray | None = None
    #: The VAE to decode with, the factor from latent to pixels, and its measured cost.
    vae: Any = field(default=None, repr=False)
    scale_factor: int = 8
    decode_s_per_latent_px: float = float("inf")
    budget_s: float = DECODE_BUDGET_S
    decode_share: float = DECODE_SHARE
    _last_call: float = field(default=0.0, repr=False)

    @classmethod
    def fit(cls, vae, device: str, dtype, n_colours: int = 24, size: int = 64) -> LatentPreviewer:
        import torch

        rng = np.random.default_rng(0)
        colours = np.concatenate([np.eye(3), 1 - np.eye(3), rng.uniform(0, 1, (n_colours - 6, 3))])
        images = torch.tensor(colours, dtype=torch.float32)[:, :, None, None] * 2 - 1
        images = images.expand(-1, -1, size, size).to(device, dtype)
        # A few textured images too, for the spread of a clean latent (solid colours have none).
        ramps = torch.linspace(-1, 1, size)
        texture = torch.stack(
            [
                ramps[None, :].expand(size, size),
                ramps[:, None].expand(size, size),
                (ramps[None, :] * ramps[:, None]),
            ]
        )
        with torch.no_grad():
            latents = vae.encode(images).latent_dist.mean
            textured = vae.encode(texture[None].to(device, dtype)).latent_dist.mean
        scale = getattr(vae.config, "scaling_factor", 1.0) or 1.0
        z = (latents.float() * scale).mean(dim=(2, 3)).cpu().numpy()  # (N, C)
        design = np.concatenate([z, np.ones((len(z), 1))], axis=1)
        solution, *_ = np.linalg.lstsq(design, colours, rcond=None)
        spread = torch.cat([latents, textured]).float() * scale
        clean_std = spread.std(dim=(0, 2, 3)).cpu().numpy()
        factor = size // latents.shape[-1]
        previewer = cls(
            weight=solution[:-1],
            bias=solution[-1],
            clean_std=clean_std,
            vae=vae,
            scale_factor=max(1, factor),
        )
        previewer.decode_s_per_latent_px = previewer._time_decode(latents.shape[1], device, dtype)
        return previewer

    # ----------------------------------------------------------------- the rule
    def _time_decode(self, channels: int, device: str, dtype) -> float:
        """Seconds per latent pixel of one VAE decode (best of 2 after a warm-up), timed on an
        8×8 latent so that a big VAE on a CPU does not slow loading: the decoder is
        convolutions, its cost grows with the pixels (every decode since updates it)."""
        import torch

        side = 8
        z = torch.zeros(1, channels, side, side, device=device, dtype=dtype)
        best = float("inf")
        with torch.no_grad():
            self.vae.decode(z)
            for _ in range(2):
                t0 = time.perf_counter()
                self.vae.decode(z)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t0)
        return best / (side * side)

    def uses_vae(self, latent_h: int, latent_w: int, budget_s: float | None = None) -> bool:
        """Decode with the real VAE when its estimated time for this latent fits the budget."""
        budget = self.budget_s if budget_s is None else budget_s
        return self.vae is not None and self.decode_s_per_latent_px * latent_h * latent_w <= budget

    def _budget_now(self) -> float:
        """DECODE_BUDGET_S, or DECODE_SHARE of the time since the previous preview if more
        (a gap over 30 s is a new job: no history)."""
        now = time.monotonic()
        gap = now - self._last_call if now - self._last_call < 30 else 0.0
        self._last_call = now
        return max(self.budget_s, self.decode_share * gap)

    # ----------------------------------------------------------------- pictures
    def toned(self, latent):
        """``latent`` (C, h, w) with its deviation from the mean brought within
        :data:`NOISE_SPREAD` times a clean latent's spread where it is wider (noise early in
        sampling); a clean latent (the images' own spread varies around the fit set's) passes
        unchanged."""
        import torch

        z = latent.detach().float()
        if self.clean_std is None:
            return z
        mean = z.mean(dim=(1, 2), keepdim=True)
        std = z.std(dim=(1, 2), keepdim=True).clamp_min(1e-6)
        target = (
            NOISE_SPREAD
            * torch.as_tensor(self.clean_std, dtype=z.dtype, device=z.device)[:, None, None]
        )
        if bool((std <= target).all()):
            return z
        return mean + (z - mean) * torch.clamp(target / std, max=1.0)

    def rgb(self, latent) -> np.ndarray:
        """(C, h, w) latent → (h, w, 3) uint8 by the linear projection, at latent size."""
        z = self.toned(latent).cpu().numpy()
        img = np.einsum("chw,cd->hwd", z, self.weight) + self.bias
        return (np.clip(img, 0, 1) * 255).astype(np.uint8)

    def image(self, latent, max_side: int = MAX_SIDE):
        """A PIL image of ``latent`` (C, h, w): decoded when cheap, else projected and
        upsampled bilinearly; at most ``max_side`` on its longer side."""
        from PIL import Image

        _c, h, w = latent.shape
        out_w, out_h = w * self.scale_factor, h * self.scale_factor
        if max(out_w, out_h) > max_side:
            k = max_side / max(out_w, out_h)
            out_w, out_h = max(1, round(out_w * k)), max(1, round(out_h * k))
        if self.uses_vae(h, w, self._budget_now()):
            picture = Image.fromarray(self.decode(latent))
        else:
            picture = Image.fromarray(self.rgb(latent))
        if picture.size != (out_w, out_h):
            picture = picture.resize((out_w, out_h), Image.Resampling.BILINEAR)
        return picture

    def decode(self, latent) -> np.ndarray:
        """(C, h, w) latent → (H, W, 3) uint8 through the VAE's decoder."""
        import torch

        vae = self.vae
        z = self.toned(latent)[None]
        scale = getattr(vae.config, "scaling_factor", 1.0) or 1.0
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        param = next(vae.parameters())
        t0 = time.perf_counter()
        with torch.no_grad():
            out = vae.decode((z / scale + shift).to(param.device, param.dtype)).sample
        # Keep the estimate current: on a machine that gets busy, previews fall back to the
        # projection instead of slowing sampling.
        per_px = (time.perf_counter() - t0) / (z.shape[-1] * z.shape[-2])
        self.decode_s_per_latent_px = 0.7 * self.decode_s_per_latent_px + 0.3 * per_px
        img = ((out[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return img.permute(1, 2, 0).cpu().numpy()

    def png_b64(self, latent, max_side: int = MAX_SIDE) -> tuple[str, int, int]:
        image = self.image(latent, max_side)
        buf = io.BytesIO()
        image.save(buf, format="PNG", compress_level=1)
        return base64.b64encode(buf.getvalue()).decode("ascii"), image.width, image.height


class DenoisedTap:
    """The scheduler's current estimate of the clean latent x̂₀ during one pipeline call.

    A preview of x_t shows mostly noise until the last steps (for ε-prediction samplers x_t =
    √ᾱ_t·x₀ + √(1−ᾱ_t)·ε, DDPM eq. 4); the estimate x̂₀ = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t (DDIM eq. 12)
    that every step computes anyway shows the picture the run is heading for. Most diffusers
    schedulers return it from ``step`` (``pred_original_sample``); the DPM-Solver / UniPC
    family keeps it as the last of ``model_outputs`` when it predicts data (x₀). Schedulers that
    give neither (PNDM) preview x_t as before.

        with DenoisedTap(pipe.scheduler) as tap:
            pipe(..., callback_on_step_end=lambda p, i, t, kw: preview(tap.latest(kw["latents"])))
    """

    def __init__(self, scheduler) -> None:
        self.scheduler = scheduler
        self.x0 = None

    def __enter__(self) -> Self:
        sched = self.scheduler
        original = sched.step

        # functools.wraps keeps the signature visible (inspect follows __wrapped__): diffusers'
        # pipelines pass ``generator`` to ``step`` only when its signature names it, and an
        # ancestral sampler without it draws its noise from the global RNG (seeds stop working).
        @functools.wraps(original)
        def step(*args, **kwargs):
            sigma = self._flow_sigma()
            out = original(*args, **kwargs)
            self.x0 = self._estimate(out)
            if self.x0 is None and sigma is not None:
                self.x0 = _flow_x0(sigma, args, kwargs)
            return out

        sched.step = step  # an instance attribute over the class's method, removed on exit
        return self

    def __exit__(self, *exc: object) -> None:
        self.scheduler.__dict__.pop("step", None)
        self.x0 = None

    def _estimate(self, out):
        if isinstance(out, tuple) and len(out) > 1:
            return out[1]
        x0 = getattr(out, "pred_original_sample", None)
        if x0 is not None:
            return x0
        config = getattr(self.scheduler, "config", {})
        predicts_x0 = str(config.get("algorithm_type", "")).endswith("dpmsolver++") or bool(
            config.get("predict_x0", False)
        )
        outputs = getattr(self.scheduler, "model_outputs", None)
        if predicts_x0 and outputs and outputs[-1] is not None:
            return outputs[-1]
        return None

    def _flow_sigma(self):
        """σ of the step about to run, for the flow-matching schedulers (SD3/Flux), which
        return no x̂₀; None for the others."""
        sched = self.scheduler
        if not any(c.__name__.startswith("FlowMatch") for c in type(sched).__mro__):
            return None
        sigmas = getattr(sched, "sigmas", None)
        index = getattr(sched, "step_index", None) or 0
        return sigmas[index] if sigmas is not None and index < len(sigmas) else None

    def latest(self, latents):
        """x̂₀ where the scheduler gave one of the latents' shape, else the latents."""
        x0 = self.x0
        return x0 if x0 is not None and tuple(x0.shape) == tuple(latents.shape) else latents


def _flow_x0(sigma, args, kwargs):
    """x̂₀ = x_σ − σ·v̂ on the straight path x_σ = (1 − σ)·x₀ + σ·ε, whose velocity is
    v = ε − x₀ (Esser et al. 2024, eqs. 1–2; Liu et al. 2022)."""
    v = args[0] if args else kwargs.get("model_output")
    x = args[2] if len(args) > 2 else kwargs.get("sample")
    if v is None or x is None:
        return None
    return x - sigma.to(x.device, x.dtype) * v
