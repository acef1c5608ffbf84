"""Frame interpolation for LOVECon's smoothing. Built in: optical flow (OpenCV Farneback); the
midpoint of two frames is both frames warped half-way along the flow between them, averaged.
With weights the user supplies: RIFE (:mod:`engine.video.rife`). Both are an
:data:`Interpolator`, chosen by name with :func:`make_interpolator`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.errors import EngineError

#: ``(a, b) → mid``: the frame half-way between two (H, W, 3) uint8 RGB frames.
Interpolator = Callable[[np.ndarray, np.ndarray], np.ndarray]


def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense flow a → b (H, W, 2) in pixels: a(x) ≈ b(x + flow(x))."""
    import cv2

    ga = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    levels = max(1, min(3, int(np.log2(min(a.shape[:2]) / 8))))
    return cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, levels, 9, 3, 5, 1.1, 0)


def warp(img: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Sample ``img`` at x + f(x) (backward warp)."""
    import cv2

    h, w = f.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(
        img, xs + f[..., 0], ys + f[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def flow_midpoint(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The frame half-way between a and b."""
    f = flow(a, b)
    mid = 0.5 * warp(a, -0.5 * f).astype(np.float32) + 0.5 * warp(b, 0.5 * f).astype(np.float32)
    return np.clip(mid.round(), 0, 255).astype(np.uint8)


def make_interpolator(
    name: str, rife_weights: str | None = None, device="cpu", dtype=None
) -> Interpolator:
    """The interpolator called ``name``: ``flow`` (built in) or ``rife`` (the weights file or
    folder at ``rife_weights``, run on ``device``/``dtype``; a missing, unreadable or
    mismatched file raises :class:`EngineError`)."""
    if name == "flow":
        return flow_midpoint
    if name == "rife":
        import torch

        from engine.video.rife import load_rife

        return load_rife(rife_weights, device, dtype or torch.float32)
    raise EngineError(
        f"Unknown interpolator {name!r}: use 'flow' or 'rife'.", "job.params.interpolator"
    )


def reinterpolate(
    frames: np.ndarray, first: int, interp: Interpolator = flow_midpoint
) -> np.ndarray:
    """LOVECon's last-step re-interpolation of one window (the official
    ``DDIMInterpolationScheduler.step``): the frames from position ``first`` (the first new
    frame, after the context frames) to the second last are replaced *in order*, each by the
    midpoint of its left neighbour — already replaced, and for the first new frame the context
    frame in front of it, the seam with the previous window — and its right neighbour. The
    window's last frame is kept."""
    out = frames.copy()
    for j in range(max(first, 1), len(frames) - 1):
        out[j] = interp(out[j - 1], out[j + 1])
    return out


def smooth(frames: np.ndarray, interp: Interpolator = flow_midpoint) -> np.ndarray:
    """LOVECon's final smoothing of the whole video (the official validation loop): every inner
    frame, in order, becomes the mean of itself and the midpoint of its neighbours — the left
    one already smoothed."""
    out = frames.copy()
    for j in range(1, len(frames) - 1):
        mid = interp(out[j - 1], out[j + 1]).astype(np.float32)
        out[j] = np.clip((0.5 * out[j] + 0.5 * mid).round(), 0, 255).astype(np.uint8)
    return out


def warping_error(frames: np.ndarray, source: np.ndarray) -> float:
    """Mean absolute warping error between consecutive output frames, with the flow taken from
    the source: mean |out_{t+1}(x) − out_t(x + f_src(x))| over pixels and frame pairs, in
    0..255 units (the temporal-consistency figure of docs/video.md)."""
    errs = []
    for t in range(len(frames) - 1):
        f = flow(source[t + 1], source[t])  # source[t+1](x) ≈ source[t](x + f)
        warped = warp(frames[t], f).astype(np.float32)
        errs.append(np.abs(frames[t + 1].astype(np.float32) - warped).mean())
    return float(np.mean(errs)) if errs else 0.0
