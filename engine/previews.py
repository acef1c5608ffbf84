"""Cheap previews during sampling: a linear latent → RGB projection, no VAE decode.

The projection is fitted once per loaded VAE: encode a few solid-colour images, then solve the
least-squares map from their mean latents to their colours. This works for any VAE (SD 1.x,
SDXL, the embedded model) without hard-coded per-model factors, and costs one tiny encoder pass.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np


@dataclass
class LatentPreviewer:
    weight: np.ndarray  # (C, 3)
    bias: np.ndarray  # (3,)

    @classmethod
    def fit(cls, vae, device: str, dtype, n_colours: int = 24, size: int = 64) -> LatentPreviewer:
        import torch

        rng = np.random.default_rng(0)
        colours = np.concatenate([np.eye(3), 1 - np.eye(3), rng.uniform(0, 1, (n_colours - 6, 3))])
        images = torch.tensor(colours, dtype=torch.float32)[:, :, None, None] * 2 - 1
        images = images.expand(-1, -1, size, size).to(device, dtype)
        with torch.no_grad():
            latents = vae.encode(images).latent_dist.mean
        scale = getattr(vae.config, "scaling_factor", 1.0) or 1.0
        z = (latents.float() * scale).mean(dim=(2, 3)).cpu().numpy()  # (N, C)
        design = np.concatenate([z, np.ones((len(z), 1))], axis=1)
        solution, *_ = np.linalg.lstsq(design, colours, rcond=None)
        return cls(weight=solution[:-1], bias=solution[-1])

    def rgb(self, latent) -> np.ndarray:
        """(C, h, w) latent tensor → (h, w, 3) uint8."""
        z = latent.detach().float().cpu().numpy()
        img = np.einsum("chw,cd->hwd", z, self.weight) + self.bias
        return (np.clip(img, 0, 1) * 255).astype(np.uint8)

    def png_b64(self, latent, max_side: int = 128) -> tuple[str, int, int]:
        from PIL import Image

        image = Image.fromarray(self.rgb(latent))
        if max(image.size) > max_side:
            image.thumbnail((max_side, max_side))
        buf = io.BytesIO()
        image.save(buf, format="PNG", compress_level=1)
        return base64.b64encode(buf.getvalue()).decode("ascii"), image.width, image.height
