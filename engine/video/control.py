"""Control maps for the ControlNet, one per frame: canny via OpenCV; HED, depth and pose only
with annotator weights on disk (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.errors import EngineError
from engine.video_protocol import ControlSpec


def canny_maps(frames: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB → (N, H, W, 3) uint8 edge maps (white edges on black), as the
    ControlNet canny models were trained on (``cv2.Canny`` with hysteresis thresholds)."""
    import cv2

    if low > high:
        raise EngineError(f"The canny low threshold ({low}) is above the high one ({high})",
                          "control.low_threshold")
    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        edges = cv2.Canny(np.ascontiguousarray(frame), low, high)
        out[i] = edges[..., None]
    return out


def control_maps(frames: np.ndarray, spec: ControlSpec) -> np.ndarray:
    if spec.type == "canny":
        return canny_maps(frames, spec.low_threshold, spec.high_threshold)
    folder = Path(spec.annotator).expanduser() if spec.annotator else None
    if folder is None or not folder.exists():
        raise EngineError(
            f"{spec.type} control needs its annotator's weights on disk (e.g. lllyasviel/"
            "Annotators), and none were given or found. Use canny, which needs none, or set "
            "control.annotator to the weights' folder.", "control.annotator")
    try:
        import controlnet_aux  # noqa: F401
    except ImportError:
        raise EngineError(
            f"{spec.type} maps need the controlnet_aux package to read the weights in {folder}; "
            "it is not installed in this engine. Use canny.", "control.type") from None
    return _aux_maps(frames, spec.type, folder)


def _aux_maps(frames: np.ndarray, kind: str, folder: Path) -> np.ndarray:
    from controlnet_aux import HEDdetector, MidasDetector, OpenposeDetector
    from PIL import Image

    cls = {"hed": HEDdetector, "depth": MidasDetector, "pose": OpenposeDetector}[kind]
    detector = cls.from_pretrained(str(folder))
    h, w = frames.shape[1:3]
    maps = [np.asarray(detector(Image.fromarray(f)).convert("RGB").resize((w, h))) for f in frames]
    return np.stack(maps)


def preview_indices(n: int, count: int) -> list[int]:
    """``count`` positions spread evenly over ``n`` frames (first and last included)."""
    if n <= count:
        return list(range(n))
    return [round(i * (n - 1) / (count - 1)) for i in range(count)] if count > 1 else [0]
