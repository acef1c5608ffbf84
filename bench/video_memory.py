"""Peak memory (RSS) of decoding a clip for the control preview and for an edit, against the
clip's length (issue 16): neither may grow with it.

For each length it writes a 720p clip (30 fps, x264 ultrafast) and, each in a fresh process so
that the peak is its own, measures ``ru_maxrss`` of:

- ``preview``: the control preview's decode of the whole clip — the 32 player frames kept, at
  512×288 (``decode(..., size=, keep=)``, what ``/v1/video/control_preview`` runs);
- ``edit``: an edit's decode of 24 frames spread over the whole clip (stride = frames ÷ 24) at
  512×288 (what the ``video_edit`` job holds before any model work);
- ``full-res (before)``: the preview as it was before issue 16 — every selected frame kept at
  full resolution, then 32 picked and scaled (``decode(..., size=None)``), for comparison;
- ``baseline``: importing the modules, nothing decoded.

    python bench/video_memory.py                    # 2, 7, 14 s
    python bench/video_memory.py --seconds 2 14 60 --out mem.json

docs/video.md quotes its table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

_MEASURE = """
import resource, sys
sys.path.insert(0, {repo!r})
from engine.video.io import decode, probe
from engine.video.control import preview_indices
from engine.video_protocol import FrameRange
path, case = {path!r}, {case!r}
info = probe(path)
if case == "preview":
    decode(path, FrameRange(), size=(512, 288, "crop"), keep=preview_indices(info.frames, 32),
           info=info)
elif case == "edit":
    decode(path, FrameRange(stride=max(1, info.frames // 24)), size=(512, 288, "crop"), info=info)
elif case == "full-res (before)":
    from engine.video.io import fit_frames
    clip = decode(path, FrameRange(), info=info)
    fit_frames(clip.frames[preview_indices(len(clip.frames), 32)], 512, 288, "crop")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def write_clip(
    path: Path, seconds: float, width: int = 1280, height: int = 720, fps: int = 30
) -> Path:
    import av
    import numpy as np

    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "28"}
        for i in range(int(seconds * fps)):
            img = np.stack(
                [(xx + 4 * i) % 256, (yy + 2 * i) % 256, ((xx + yy) // 4 + i) % 256], -1
            ).astype(np.uint8)
            for packet in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
    return path


def measure(path: Path, case: str) -> int:
    code = _MEASURE.format(repo=str(REPO), path=str(path), case=case)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, nargs="+", default=[2, 7, 14])
    ap.add_argument(
        "--before-up-to",
        type=float,
        default=14,
        help="measure the full-res path only up to this length (it needs GBs)",
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.seconds:
            clip = write_clip(Path(tmp) / f"{seconds:g}s.mp4", seconds)
            row = {"seconds": seconds, "frames": int(seconds * 30)}
            cases = ["baseline", "preview", "edit"]
            if seconds <= args.before_up_to:
                cases.append("full-res (before)")
            for case in cases:
                row[case] = measure(clip, case)
            rows.append(row)
            print(
                f"{seconds:5g} s ({row['frames']:5d} frames 1280×720): "
                + ", ".join(f"{c} {row[c] / 2**20:.0f} MiB" for c in cases),
                flush=True,
            )
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
