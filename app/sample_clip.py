"""The sample clip the README shows, offered in the Video panel ("Try the sample clip").

``resources/video/sample-clip.mp4`` is the engine's own sample (a t-rex sprite from the
built-in model's fit set gliding across 64×64 frames, 24 frames at 8 fps, 3.5 KB), written by
``python -m engine.video.sample_clip`` and shipped as a file so that the app, which never imports
the engine, can open it like any dropped video. ``sample-clip.json`` beside it holds its caption
(the source prompt) and a first edit to try.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path


def video_resources() -> Path:
    """``resources/video`` in a checkout, or inside the packaged app's folder."""
    base = getattr(sys, "_MEIPASS", None)
    root = Path(base) if base else Path(__file__).resolve().parents[1]
    return root / "resources" / "video"


@dataclass(frozen=True)
class SampleClip:
    path: Path
    source_prompt: str
    target_prompt: str
    edit_phrase: str
    #: What the first edit changes (its phrase names the subject to keep for "background").
    edit_type: str = "background"


def sample_clip() -> SampleClip | None:
    """The shipped sample clip, or None when its files are missing (a trimmed install)."""
    folder = video_resources()
    try:
        meta = json.loads((folder / "sample-clip.json").read_text(encoding="utf-8"))
        path = folder / meta["file"]
    except (OSError, ValueError, KeyError):
        return None
    if not path.is_file():
        return None
    return SampleClip(
        path,
        str(meta.get("source_prompt", "")),
        str(meta.get("target_prompt", "")),
        str(meta.get("edit_phrase", "")),
        str(meta.get("edit_type", "background")),
    )
