"""Control-map annotators (HED, OpenPose body, MiDaS depth where it builds): seconds to load the
weights and seconds per frame at a few frame sizes, on the real networks (random weights time
exactly like the published ones; pass --folder to use those).

    python bench/annotators.py                        # CPU, 1 thread, 64 and 512 px
    python bench/annotators.py --device cuda --threads 0 --folder ~/Annotators

Writes JSON with --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", help="An annotator folder; default: random weights in a temp dir")
    ap.add_argument("--kinds", default="hed,pose,depth")
    ap.add_argument("--sizes", default="64,512")
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads; 0 = torch's own")
    ap.add_argument("--out")
    args = ap.parse_args()

    import numpy as np
    import torch

    from engine.errors import EngineError
    from engine.video import annotators
    from tests.support.annotators import write_annotator_folder

    if args.threads:
        torch.set_num_threads(args.threads)
    kinds = args.kinds.split(",")
    tmp = None
    folder = Path(args.folder).expanduser() if args.folder else None
    if folder is None:
        tmp = tempfile.TemporaryDirectory()
        folder = write_annotator_folder(Path(tmp.name), kinds=kinds)
    rng = np.random.default_rng(0)
    rows = []
    for kind in kinds:
        annotators.release()
        t0 = time.perf_counter()
        try:
            run = annotators.annotator(kind, folder, args.device)
        except EngineError as exc:
            rows.append({"kind": kind, "error": exc.message})
            print(f"{kind}: {exc.message}")
            continue
        load_s = time.perf_counter() - t0
        for size in map(int, args.sizes.split(",")):
            frames = rng.integers(0, 256, (args.frames + 1, size, size, 3), dtype=np.uint8)
            run(frames[0])  # warm-up
            t0 = time.perf_counter()
            for f in frames[1:]:
                run(f)
            per_frame = (time.perf_counter() - t0) / args.frames
            rows.append(
                {
                    "kind": kind,
                    "size": size,
                    "load_s": round(load_s, 3),
                    "s_per_frame": round(per_frame, 4),
                    "device": args.device,
                    "threads": torch.get_num_threads(),
                }
            )
            print(f"{kind:5s} {size:4d}px  load {load_s:6.2f} s  {per_frame:7.3f} s/frame")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
