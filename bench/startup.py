"""GUI start-up: seconds from launching ``sfumato`` to the main window shown.

Launches the real app (``python -m app``) N times, offscreen unless DISPLAY is set, and reads
the "window shown" line the app logs right after ``window.show()``; the engine is not started
(``--no-engine``) because it starts after the window and never delays it. Also checks that the
GUI process never imports torch/diffusers/transformers.

    python bench/startup.py [-n 7]
    python bench/startup.py --frozen dist/Sfumato/Sfumato [--engine-python .venv/bin/python]

Target (issue 3): ≤ 1.5 s median on the 2-core dev machine.

``--frozen`` times the packaged app instead (packaging/build.py): its first launch after the OS
file cache was emptied where that is allowed (``--drop-caches``, root on Linux), else its first
launch in this run, then warm launches. With ``--engine-python`` it also times the way to a
usable engine (``--smoke-test``: window, engine process, model list, health).
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


def one_launch(data_dir: str, program: list[str] | None = None) -> float:
    env = {**os.environ, "SFUMATO_LOG": "INFO", "SFUMATO_DATA_DIR": data_dir}
    env.setdefault("QT_QPA_PLATFORM", "offscreen" if not os.environ.get("DISPLAY") else "xcb")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*(program or [sys.executable, "-m", "app"]), "--no-engine"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
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
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    return [m for m in out.stdout.strip().split(",") if m]


def drop_caches() -> bool:
    """Empty the OS page cache (Linux, root only); False where not allowed."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def engine_ready(program: list[str], data_dir: str, engine_python: str) -> float:
    """Seconds from launch to ``SFUMATO_SMOKE_OK`` (engine started, answering)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFUMATO_")}
    env.setdefault("QT_QPA_PLATFORM", "offscreen" if not os.environ.get("DISPLAY") else "xcb")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*program, "--data-dir", data_dir, "--engine-python", engine_python, "--smoke-test", "300"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        for line in proc.stdout:
            if line.startswith("SFUMATO_SMOKE_OK"):
                return time.perf_counter() - t0
        raise RuntimeError("the frozen app did not reach its engine (see its log folder)")
    finally:
        proc.wait(timeout=60)  # it closes itself after the smoke test


def frozen(args: argparse.Namespace) -> int:
    program = [str(Path(args.frozen).resolve())]
    bundle = Path(args.frozen).resolve().parent
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file() and not p.is_symlink())
    with tempfile.TemporaryDirectory() as data_dir:
        dropped = args.drop_caches and drop_caches()
        cold = one_launch(data_dir, program)
        times = [one_launch(data_dir, program) for _ in range(args.n)]
        ready = engine_ready(program, data_dir, args.engine_python) if args.engine_python else None
    kind = "after dropping the page cache" if dropped else "first launch of this run"
    print(f"frozen app {program[0]} ({size / 2**20:.0f} MiB)")
    print(f"cold start → window shown ({kind}): {cold:.2f} s")
    print(
        f"warm start → window shown, {args.n} runs: min {min(times):.2f} s, "
        f"median {statistics.median(times):.2f} s, max {max(times):.2f} s"
    )
    if ready is not None:
        print(f"launch → engine answering (window, engine process, health): {ready:.2f} s")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=7)
    ap.add_argument("--frozen", metavar="PATH", help="time the packaged app's executable")
    ap.add_argument(
        "--drop-caches",
        action="store_true",
        help="with --frozen: empty the OS file cache before the cold start (root)",
    )
    ap.add_argument(
        "--engine-python",
        metavar="PYTHON",
        help="with --frozen: also time launch → engine answering, with this Python",
    )
    args = ap.parse_args()
    if args.frozen:
        return frozen(args)
    with tempfile.TemporaryDirectory() as data_dir:
        one_launch(data_dir)  # warm the OS file cache
        times = [one_launch(data_dir) for _ in range(args.n)]
    heavy = heavy_imports()
    print(
        f"sfumato start → window shown, {args.n} runs: "
        f"min {min(times):.2f} s, median {statistics.median(times):.2f} s, max {max(times):.2f} s"
    )
    print(f"heavy modules imported by the GUI: {', '.join(heavy) or 'none'}")
    ok = statistics.median(times) <= 1.5 and not heavy
    print("target ≤ 1.5 s and no torch:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
