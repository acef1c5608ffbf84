"""Control maps for the ControlNet, one per frame: canny via OpenCV; HED, depth and pose with
annotator weights on disk (:mod:`engine.video.annotators`; nothing is downloaded)."""

from __future__ import annotations

import numpy as np

from engine.errors import EngineError
from engine.video_protocol import ControlSpec


def canny_maps(frames: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB → (N, H, W, 3) uint8 edge maps (white edges on black), as the
    ControlNet canny models were trained on (``cv2.Canny`` with hysteresis thresholds)."""
    import cv2

    if low > high:
        raise EngineError(
            f"The canny low threshold ({low}) is above the high one ({high})",
            "control.low_threshold",
        )
    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        edges = cv2.Canny(np.ascontiguousarray(frame), low, high)
        out[i] = edges[..., None]
    return out


def control_maps(
    frames: np.ndarray, spec: ControlSpec, device: str = "cpu", generation: int | None = None
) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB → (N, H, W, 3) uint8 maps of ``spec.type``. HED, depth and pose
    run their annotator (:mod:`engine.video.annotators`) on ``device``; ``generation`` is the
    annotator cache's when ``device`` was chosen (see :func:`annotators.annotator`)."""
    if spec.type == "canny":
        return canny_maps(frames, spec.low_threshold, spec.high_threshold)
    if not spec.annotator:
        raise EngineError(
            f"{spec.type} control needs its annotator's weights on disk (e.g. lllyasviel/"
            "Annotators), and no folder was given. Use canny, which needs none, or set "
            "control.annotator to the weights' folder.",
            "control.annotator",
        )
    import cv2

    from engine.video.annotators import annotator

    run = annotator(spec.type, spec.annotator, device, generation)
    h, w = frames.shape[1:3]
    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        m = run(np.ascontiguousarray(frame))
        out[i] = (
            m if m.shape[:2] == (h, w) else cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
        )
    return out


def preview_indices(n: int, count: int) -> list[int]:
    """``count`` positions spread evenly over ``n`` frames (first and last included); none
    for ``count`` 0."""
    if count <= 0:
        return []
    if n <= count:
        return list(range(n))
    return [round(i * (n - 1) / (count - 1)) for i in range(count)] if count > 1 else [0]
