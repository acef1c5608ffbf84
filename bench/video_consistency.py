"""Temporal consistency of video edits on the sample clip: mean warping error between
consecutive output frames (flow from the source, OpenCV Farneback; 0..255 units, lower = more
consistent) for per-frame editing (no cross-frame attention, no fusion, no smoothing) vs LOVECon
vs ControlVideo, on the embedded model and its canny ControlNet. Also the source's own error
(the floor the flow allows).

    python bench/video_consistency.py [--frames 12] [--steps 10] [--tuning-steps 20] [--out f.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def per_frame_edit(nets, frames, maps, p):
    """Each frame inverted and re-sampled alone: the baseline without temporal modelling."""
    import numpy as np

    from engine.video.denoise import (
        control_tensor,
        ddim_grid,
        ddim_invert,
        ddim_sample,
        decode_latents,
        encode_frames,
        text_embeddings,
    )

    grid = ddim_grid(nets, p.steps)
    src, tgt = text_embeddings(nets, p.source_prompt), text_embeddings(nets, p.target_prompt)
    unc = text_embeddings(nets, p.negative_prompt)
    out = []
    for i in range(len(frames)):
        z0 = encode_frames(nets, frames[i : i + 1])
        ctrl = control_tensor(maps[i : i + 1], nets)
        zs = ddim_invert(nets, z0, grid, src, ctrl, p.control.scale)
        z = ddim_sample(nets, zs[-1], grid, tgt, ctrl, p.control.scale, p.cfg_scale, unc)
        out.append(decode_latents(nets, z))
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--tuning-steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--strip", type=Path, help="save a PNG: source / per-frame / LOVECon / CV")
    a = ap.parse_args()

    import numpy as np
    import torch

    from engine.video import controlvideo, lovecon
    from engine.video.control import canny_maps
    from engine.video.interpolate import warping_error
    from engine.video.sample_clip import sample_caption, sample_frames
    from engine.video_protocol import VideoEditParams
    from tests.support.tiny_video import embedded_video_nets

    torch.set_num_threads(a.threads)
    nets = embedded_video_nets()
    frames = sample_frames(a.frames)
    maps = canny_maps(frames)
    src = sample_caption()
    p = VideoEditParams(
        source="sample",
        source_prompt=src,
        target_prompt=src.replace("white", "blue"),
        edit_type="background",
        edit_phrase="t-rex",
        steps=a.steps,
        width=64,
        height=64,
        tuning_steps=a.tuning_steps,
        cfg_scale=7.5,
    )
    quiet = lambda _s, _n: None
    results, outputs = {"source": {"warping_error": warping_error(frames, frames)}}, {}
    for name, fn in [
        ("per-frame", lambda: per_frame_edit(nets, frames, maps, p)),
        ("lovecon", lambda: lovecon.edit(nets, frames, maps, p, quiet)),
        ("controlvideo", lambda: controlvideo.edit(nets, frames, maps, p, quiet)[0]),
    ]:
        t0 = time.perf_counter()
        out = fn()
        outputs[name] = out
        results[name] = {
            "warping_error": round(warping_error(out, frames), 3),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        print(name, results[name], flush=True)
    report = {
        "frames": a.frames,
        "steps": a.steps,
        "tuning_steps": a.tuning_steps,
        "size": 64,
        "edit": f"{p.source_prompt!r} -> {p.target_prompt!r} (background)",
        "results": results,
    }
    print(json.dumps(report, indent=1))
    if a.out:
        a.out.write_text(json.dumps(report, indent=1))
    if a.strip:
        from PIL import Image

        rows = [np.concatenate(list(frames), 1)] + [
            np.concatenate(list(o), 1) for o in outputs.values()
        ]
        Image.fromarray(np.concatenate(rows, 0)).save(a.strip)


if __name__ == "__main__":
    main()
