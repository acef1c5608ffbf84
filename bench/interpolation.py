"""LOVECon's smoothing interpolators: seconds per midpoint frame for the built-in optical flow
(OpenCV Farneback) and RIFE 4.6 (random weights in the release's layout — they time exactly
like the real ones), at the sizes LOVECon runs. A clip's smoothing costs about 1.5 midpoints
per frame (one per inner frame in the final pass, half as many per window after its last
step); docs/video.md multiplies it out.

    python bench/interpolation.py                            # CPU, 64 / 256 / 512 px
    python bench/interpolation.py --device cuda --dtype float16 --sizes 512 768

Writes JSON with --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _time(fn, a, b, repeat: int, sync) -> float:
    fn(a, b)  # warm-up (allocations, cuDNN choice)
    sync()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn(a, b)
    sync()
    return (time.perf_counter() - t0) / repeat


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 512])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = default")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from engine.video.interpolate import flow_midpoint
    from engine.video.rife import IFNet, RifeInterpolator
    from engine.video.sample_clip import sample_frames

    if args.threads:
        torch.set_num_threads(args.threads)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    torch.manual_seed(0)
    rife = RifeInterpolator(IFNet(), args.device, getattr(torch, args.dtype))
    rows = []
    for size in args.sizes:
        a, b = sample_frames(2, size, size)  # the sample clip's sprite moving between them
        row = {
            "size": size,
            "flow_s": round(_time(flow_midpoint, a, b, args.repeat, sync), 5),
            "rife_s": round(_time(rife, a, b, args.repeat, sync), 5),
        }
        rows.append(row)
        print(
            f"{size:>5} px  flow {row['flow_s'] * 1000:8.1f} ms  rife {row['rife_s'] * 1000:8.1f} ms"
            f"  ({args.device}, {args.dtype}, torch threads {torch.get_num_threads()})"
        )
    out = {
        "device": args.device,
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "rows": rows,
    }
    if args.out:
        args.out.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
