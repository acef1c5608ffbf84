"""A sample clip made from the embedded model's own data, no downloads: a sprite from the
sfumato-tiny fit set (an emoji on a plain background) gliding and bobbing across the frame.

``python -m engine.video.sample_clip out.mp4 [--frames 24] [--fps 8] [--size 64] [--audio]``
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from engine.models.registry import RESOURCES

FITSET = RESOURCES / "fitsets" / "sfumato-tiny"
#: The sprite the sample shows (index into the fit set) and its caption, the source prompt.
SAMPLE_INDEX = 0


def sample_sprite(index: int = SAMPLE_INDEX) -> tuple[np.ndarray, np.ndarray, dict]:
    """(tile (H, W, 3) uint8, foreground mask (H, W) bool, fit-set record)."""
    from engine.training.dataset import load_fit_set

    images, items = load_fit_set(FITSET)
    tile = images[index]
    corners = np.concatenate([tile[:2, :2].reshape(-1, 3), tile[-2:, -2:].reshape(-1, 3)])
    background = np.median(corners, axis=0)
    mask = np.abs(tile.astype(np.int16) - background).sum(-1) > 40
    return tile, mask, items[index]


def sample_frames(
    frames: int = 24, width: int = 64, height: int = 64, index: int = SAMPLE_INDEX
) -> np.ndarray:
    """(frames, height, width, 3) uint8: the sprite moving on its own background colour."""
    from PIL import Image

    tile, mask, _ = sample_sprite(index)
    corners = np.concatenate([tile[:2, :2].reshape(-1, 3), tile[-2:, -2:].reshape(-1, 3)])
    background = np.median(corners, axis=0).astype(np.uint8)
    side = int(min(width, height) * 0.75)
    sprite = np.asarray(Image.fromarray(tile).resize((side, side), Image.BILINEAR))
    smask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((side, side))) > 127
    out = np.empty((frames, height, width, 3), np.uint8)
    for i in range(frames):
        phase = i / max(1, frames - 1)
        x = round((width - side) * phase)
        y = round((height - side) / 2 + (height - side) / 2 * math.sin(2 * math.pi * phase))
        out[i] = background
        region = out[i, y : y + side, x : x + side]
        region[smask] = sprite[smask]
    return out


def sample_caption(index: int = SAMPLE_INDEX) -> str:
    return sample_sprite(index)[2]["caption"]


def write_sample_clip(
    path: Path,
    frames: int = 24,
    fps: float = 8,
    width: int = 64,
    height: int = 64,
    audio: bool = False,
) -> Path:
    """Write the sample clip as H.264 MP4 (with a quiet 440 Hz tone when ``audio``)."""
    from engine.video.io import encode_video

    tone = None
    if audio:
        rate = 44100
        t = np.arange(int(rate * frames / fps)) / rate
        tone = (0.1 * np.sin(2 * math.pi * 440 * t)).astype(np.float32), rate
    return encode_video(sample_frames(frames, width, height), Path(path), fps, audio=tone)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--fps", type=float, default=8)
    ap.add_argument("--size", type=int, default=64, help="width; height too unless --height")
    ap.add_argument("--height", type=int, default=None)
    ap.add_argument("--audio", action="store_true", help="add a 440 Hz tone")
    a = ap.parse_args(argv)
    path = write_sample_clip(a.out, a.frames, a.fps, a.size, a.height or a.size, a.audio)
    print(f"{path}  ({sample_caption()})")


if __name__ == "__main__":
    main()
