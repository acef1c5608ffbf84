"""A small emoji classifier: the judge of prompt match, and the feature space of Fréchet distances.

It is trained on the dataset images only (never on generations), with blur and noise
augmentation so that it still recognises the softer images a small VAE decodes. Its
penultimate layer (256-d) is the feature space for Fréchet distances, the way Inception's pool
layer is for FID.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class EmojiClassifier(nn.Module):
    """A stride-2 stem (64 -> 32 px), three conv blocks (-> 4 px), 2x2 pooling and a linear
    head; input RGB in [-1, 1] at 64x64 (other sizes are resized)."""

    def __init__(self, num_classes: int, width: int = 16, feature_dim: int = 256):
        super().__init__()
        self.config = {"num_classes": num_classes, "width": width, "feature_dim": feature_dim}
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            _block(w, 2 * w),
            _block(2 * w, 4 * w),
            _block(4 * w, 8 * w),
            nn.AdaptiveAvgPool2d(2),
        )
        self.proj = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.2), nn.Linear(8 * w * 4, feature_dim), nn.ReLU(inplace=True)
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = (
            F.interpolate(x, size=(64, 64), mode="bilinear", antialias=True)
            if x.shape[-1] != 64
            else x
        )
        return self.proj(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def save(self, folder: Path, classes: list[str], extra: dict | None = None) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file(
            {k: v.contiguous() for k, v in self.state_dict().items()}, folder / "model.safetensors"
        )
        (folder / "config.json").write_text(
            json.dumps(
                {**self.config, "classes": classes, **(extra or {})}, ensure_ascii=False, indent=1
            )
        )

    @classmethod
    def load(cls, folder: Path) -> tuple[EmojiClassifier, list[str]]:
        from safetensors.torch import load_file

        folder = Path(folder)
        cfg = json.loads((folder / "config.json").read_text())
        model = cls(cfg["num_classes"], cfg["width"], cfg["feature_dim"])
        model.load_state_dict(load_file(folder / "model.safetensors"))
        return model.eval(), cfg["classes"]


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def _augment(
    x: torch.Tensor, g: torch.Generator, gd: torch.Generator | None = None
) -> torch.Tensor:
    """Shift, blur half, add noise. ``g`` (CPU) draws the shift; ``gd`` (on ``x``'s device,
    default ``g``) the per-image draws, so a GPU step never waits for host random numbers."""
    gd = g if gd is None else gd
    n = x.shape[0]
    # Shift by up to 4 px (the dataset's own jitter is already in the images).
    dx, dy = (torch.randint(-4, 5, (2,), generator=g)).tolist()
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    # Blur half of the batch: generations are softer than rendered glyphs.
    blur = torch.rand(n, generator=gd, device=gd.device) < 0.5
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :]) / 16
    k = k.expand(3, 1, 3, 3).to(x)
    x = torch.where(
        blur[:, None, None, None].to(x.device),
        F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=3),
        x,
    )
    amount = 0.05 * torch.rand(n, 1, 1, 1, generator=gd, device=gd.device).to(x)
    x = x + amount * torch.randn(x.shape, generator=gd, device=gd.device).to(x)
    return x.clamp(-1, 1)


def train_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    steps: int | None = None,
    batch: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    device: str = "cpu",
    log=print,
    seconds: float | None = None,
    bf16: bool = False,
    log_every: int = 100,
) -> tuple[EmojiClassifier, dict]:
    """Train on 90 % of the images for ``steps`` steps or ``seconds`` of wall time (the
    one-cycle learning rate follows the fraction spent); report top-1 on the held-out 10 %."""
    if (steps is None) == (seconds is None):
        raise ValueError("give steps or seconds")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    perm = torch.randperm(len(images), generator=g)
    n_val = max(1, len(images) // 10)
    val_idx, train_idx = perm[:n_val].to(device), perm[n_val:].to(device)
    gd = torch.Generator(device=device).manual_seed(seed)
    x_all = torch.empty((len(images), 3, *images.shape[1:3]), device=device)
    for i in range(0, len(images), 4096):
        x_all[i : i + 4096] = to_tensor(images[i : i + 4096]).to(device)
    y_all = torch.from_numpy(labels.astype(np.int64)).to(device)
    model = EmojiClassifier(num_classes).to(device)
    opt = torch.optim.AdamW(
        model.parameters(), lr=lr, weight_decay=0.05, fused=device.startswith("cuda")
    )
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if bf16 and device.startswith("cuda")
        else contextlib.nullcontext()
    )
    t0 = time.monotonic()
    step = 0
    while True:
        done = time.monotonic() - t0
        frac = step / steps if steps is not None else done / seconds
        if frac >= 1 and step:
            break
        # One-cycle (Smith & Topin 2019): warm up over 10 %, then cosine down to lr / 1e4.
        f = min(frac, 1.0)
        cur = (
            lr * (0.04 + 0.96 * f / 0.1)
            if f < 0.1
            else lr * (1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * (f - 0.1) / 0.9)))
        )
        for group in opt.param_groups:
            group["lr"] = cur
        idx = train_idx[torch.randint(len(train_idx), (batch,), generator=gd, device=device)]
        x = _augment(x_all[idx], g, gd)
        with amp:
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y_all[idx], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % log_every == 0:
            log(
                {
                    "stage": "classifier",
                    "step": step,
                    "loss": round(loss.item(), 4),
                    "elapsed_s": round(time.monotonic() - t0, 1),
                }
            )
        step += 1
    train_s = time.monotonic() - t0
    model.eval()
    with torch.no_grad():
        pred = torch.cat(
            [model(x_all[val_idx[i : i + 256]]).argmax(1) for i in range(0, len(val_idx), 256)]
        )
    acc = (pred == y_all[val_idx]).float().mean().item()
    return model.cpu(), {"val_top1": acc, "train_seconds": train_s, "steps": step}


@torch.no_grad()
def classify(
    model: EmojiClassifier, images: np.ndarray, batch: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and features for (N, H, W, 3) uint8 images."""
    logits, feats = [], []
    for i in range(0, len(images), batch):
        f = model.features(to_tensor(images[i : i + batch]))
        feats.append(f.numpy())
        logits.append(model.head(f).numpy())
    return np.concatenate(logits), np.concatenate(feats)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017, eq. 6):
    |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr((Sa Sb)^{1/2}) from the eigenvalues of sqrt(Sa) Sb sqrt(Sa), which is symmetric PSD.
    w, v = np.linalg.eigh(sa)
    sqrt_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = sqrt_a @ sb @ sqrt_a
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * tr_sqrt)
