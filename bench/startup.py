"""GUI start-up: seconds from launching ``sfumato`` to the main window shown.

Launches the real app (``python -m app``) N times, offscreen unless DISPLAY is set, and reads
the "window shown" line the app logs right after ``window.show()``; the engine is not started
(``--no-engine``) because it starts after the window and never delays it. Also checks that the
GUI process never imports torch/diffusers/transformers.

    python bench/startup.py [-n 7]

Target (issue 3): ≤ 1.5 s median on the 2-core dev machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "diffusers", "transformers")


def one_launch(data_dir: str) -> float:
    env = {**os.environ, "SFUMATO_LOG": "INFO", "SFUMATO_DATA_DIR": data_dir}
    env.setdefault("QT_QPA_PLATFORM", "offscreen" if not os.environ.get("DISPLAY") else "xcb")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "--no-engine"], cwd=REPO, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        for line in proc.stderr:
            if "window shown" in line:
                return time.perf_counter() - t0
        raise RuntimeError("the app exited without showing its window")
    finally:
        proc.kill()
        proc.wait()


def heavy_imports() -> list[str]:
    code = (
        "import sys, app.main, app.controller, app.client, app.ui.main_window;"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    return [m for m in out.stdout.strip().split(",") if m]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        one_launch(data_dir)  # warm the OS file cache
        times = [one_launch(data_dir) for _ in range(args.n)]
    heavy = heavy_imports()
    print(f"sfumato start → window shown, {args.n} runs: "
          f"min {min(times):.2f} s, median {statistics.median(times):.2f} s, max {max(times):.2f} s")
    print(f"heavy modules imported by the GUI: {', '.join(heavy) or 'none'}")
    ok = statistics.median(times) <= 1.5 and not heavy
    print("target ≤ 1.5 s and no torch:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
