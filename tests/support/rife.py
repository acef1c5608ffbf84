"""RIFE 4.6 weights in Practical-RIFE's release format (``train_log/flownet.pkl``: the IFNet's
state dict saved from a DistributedDataParallel wrapper, so every key starts with ``module.``),
with random weights: the released ones are not available offline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def write_rife_release(
    path: Path, net=None, edit: Callable[[dict], object] | None = None, seed: int = 0
) -> Path:
    """Save ``net`` (default: a fresh :class:`engine.video.rife.IFNet` seeded with ``seed``) at
    ``path`` as the release saves it; ``edit`` may change the key → tensor dict first (drop or
    add a tensor, to make a file of another layout). Returns ``path``."""
    import torch

    from engine.video import rife

    if net is None:
        torch.manual_seed(seed)
        net = rife.IFNet()
    sd = {f"module.{k}": v for k, v in net.state_dict().items()}
    if edit is not None:
        edit(sd)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path)
    return path
