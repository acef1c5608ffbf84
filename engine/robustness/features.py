"""The image features that MMD is measured in (issue 22, point 2).

MMD compares distributions through a kernel on features; what the features see is what the
test can tell apart. Two extractors, both offline:

- **the built-in model** (``sfumato-tiny``): its evaluation classifier's 256-d penultimate layer
  (``resources/eval/sfumato-tiny-classifier``), trained on the same emoji the model draws — the
  feature space of its prompt-match and Fréchet-distance measures, the analogue of Inception
  features for FID;
- **any other model** (Stable Diffusion weights the user brings): the model's own VAE encoder.
  Each image is encoded to its latent mean (4 × H/8 × W/8), average-pooled to a 4 × 4 grid per
  channel, with each channel's spatial standard deviation appended: 4·16 + 4 = 68 numbers that
  keep layout, colour and texture energy and drop pixel noise. No CLIP vision model ships with
  SD checkpoints, so none is assumed; the VAE is always at hand and already on the device.

Every image is featurised from its saved RGB (the PNG), so a resumed job computes the same
features as an uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSIFIER = Path(__file__).resolve().parents[2] / "resources" / "eval" / "sfumato-tiny-classifier"

CLASSIFIER_NOTE = (
    "the built-in model's evaluation classifier (256-d penultimate layer, trained "
    "on the emoji it draws)"
)
VAE_NOTE = (
    "the model's VAE latents: 4×4 average-pooled means and per-channel spread of each "
    "image's latent (68 numbers; no CLIP vision model is assumed)"
)


class ClassifierFeatures:
    name = "classifier"
    note = CLASSIFIER_NOTE

    def __init__(self, folder: Path = CLASSIFIER) -> None:
        from engine.training.classifier import EmojiClassifier

        self.model, _ = EmojiClassifier.load(folder)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch

        from engine.training.classifier import classify

        with torch.no_grad():
            return classify(self.model, images)[1].astype(np.float64)


class VaeLatentFeatures:
    name = "vae"
    note = VAE_NOTE

    def __init__(self, vae, device: str, dtype) -> None:
        self.vae, self.device, self.dtype = vae, device, dtype

    def __call__(self, images: np.ndarray, batch: int = 8) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        out = []
        with torch.no_grad():
            for i in range(0, len(images), batch):
                x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch]))
                x = x.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
                x = x.to(self.device, self.vae.dtype)
                z = self.vae.encode(x).latent_dist.mean.float()
                pooled = F.adaptive_avg_pool2d(z, 4).flatten(1)
                spread = z.flatten(2).std(-1)
                out.append(torch.cat([pooled, spread], 1).cpu().numpy())
        return np.concatenate(out).astype(np.float64)


def features_for(loaded):
    """The extractor for a loaded model (:class:`engine.models.loader.LoadedModel`)."""
    if loaded.info.embedded and CLASSIFIER.is_dir():
        return ClassifierFeatures()
    return VaeLatentFeatures(loaded.pipe.vae, loaded.device, loaded.dtype)


def load_rgb(paths: list[str | Path]) -> np.ndarray:
    """(N, H, W, 3) uint8 from image files."""
    from PIL import Image

    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
