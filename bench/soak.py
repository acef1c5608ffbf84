"""Soak: minutes of scripted use of the real window on the real engine, without a crash.

Issue 14: PySide6 6.12.0 on Python 3.11 aborted the window after minutes of use ("Fatal Python
error: none_dealloc") while every short test passed. This runs the app the way an artist does,
for as long as asked — generate (batches, with previews), flip through the results, a sampler
grid now and then, the Video panel's clip scrubbed and played, every dock raised in turn — and
reports, each ``--every`` seconds: the app's and the engine's resident memory, the drift of
``sys.getrefcount(None)`` and the actions done. The session runs in a child process, so a
crash is observed and timed, not suffered: the result says how many minutes ran crash-free.

    Xvfb :11 -screen 0 1920x1080x24 &
    DISPLAY=:11 python bench/soak.py --minutes 10 --out /tmp/soak.json

Without DISPLAY it runs offscreen. Numbers go into docs/performance.md ("Soak").

``--trace-malloc`` attributes the app's memory growth: the child traces Python allocations
(``tracemalloc``) and counts live objects by type (``gc.get_objects``), and the result gets the
allocation sites and the types that grew most between the first minute and the end, plus, in
every sample, what the window retains per image made (History rows and their thumbnails, Queue
cards, canvas slots). Tracing slows Python down: compare RSS only between runs alike.

``--heaptrack PREFIX`` attributes *native* growth (Qt, SQLite, image decoders: what tracemalloc
cannot see): the child runs under heaptrack (``apt-get install heaptrack``) and ends without
cleaning up, so that heaptrack's "leaked" is what was live at the end. Two soaks of different
lengths, diffed by ``bench/native_growth.py``, give the allocation sites that grow with use:

    DISPLAY=:41 python bench/soak.py --minutes 1.5 --history-page 60 --heaptrack /tmp/short
    DISPLAY=:41 python bench/soak.py --minutes 4 --history-page 60 --heaptrack /tmp/long
    python bench/native_growth.py /tmp/short.zst /tmp/long.zst
"""

from __future__ import annotations

import argparse
import collections
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROMPTS = [
    "rocket, twemoji style, on a blue background",
    "red apple, twemoji style, on a white background",
    "t-rex, twemoji style, on a yellow background",
    "snowman, twemoji style, on a green background",
]


def rss_mib(pid: int | None) -> float:
    """Resident memory of ``pid`` in MiB (Linux /proc); 0 if unknown."""
    if not pid:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def retained(controller, window) -> dict[str, int]:
    """What the app holds that grows with the images made (the bounds issue 14 asks for)."""
    history = window.history_panel
    return {
        "history_entries": len(controller.history.entries),
        "history_rows": history.view.count(),
        "history_thumbs_cached": len(history.thumbs._cache),
        "jobs": len(controller.jobs),
        "queue_cards": len(window.queue_panel.list.cards),
        "canvas_slots": len(controller.canvas.images) + len(controller.canvas.hidden),
    }


def native_mib(pid: int) -> dict[str, float]:
    """Where the resident memory is (``/proc/<pid>/smaps``: the brk heap, other anonymous
    mappings — glibc's thread arenas and big mmaps —, shared memory such as X's MIT-SHM backing
    store, files) and how glibc's malloc splits it (``mallinfo2``: in use vs. free in arenas vs.
    mmapped): growth that is malloc's *free* space is fragmentation, not a leak."""
    import ctypes

    out: collections.Counter = collections.Counter()
    kind = "file"
    try:
        for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5:  # a mapping's first line
                name = head[5] if len(head) > 5 else ""
                kind = (
                    "heap"
                    if name == "[heap]"
                    else "anon"
                    if not name
                    else "shm"
                    if name.startswith("/SYSV") or "/dev/shm" in name or "(deleted)" in line
                    else "stack"
                    if name.startswith("[stack")
                    else "other"
                    if name.startswith("[")
                    else "file"
                )
            elif line.startswith("Rss:"):
                out[kind] += int(head[1]) / 1024
    except OSError:
        pass

    class Mallinfo2(ctypes.Structure):
        _fields_ = [
            (n, ctypes.c_size_t)
            for n in (
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            )
        ]

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = Mallinfo2
        m = libc.mallinfo2()
        out.update(
            malloc_in_use=m.uordblks / 2**20,
            malloc_free=m.fordblks / 2**20,
            malloc_mmapped=m.hblkhd / 2**20,
        )
    except (OSError, AttributeError):
        pass
    return {k: round(v, 1) for k, v in sorted(out.items())}


def type_counts() -> collections.Counter:
    """Live gc-tracked objects by type name."""
    import gc

    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


def growth(before: collections.Counter, after: collections.Counter, top: int = 25) -> list:
    diff = after.copy()
    diff.subtract(before)
    return [{"type": k, "delta": v, "count": after[k]} for k, v in diff.most_common(top) if v > 0]


# ------------------------------------------------------------------ the child: the app in use
def child(
    minutes: float,
    every: float,
    data_dir: str,
    trace: bool = False,
    history_page: int = 0,
    hard_exit: bool = False,
    trim: bool = False,
) -> int:
    import asyncio
    import gc
    import tracemalloc

    import qasync
    from PySide6.QtWidgets import QApplication, QDockWidget

    if trace:
        tracemalloc.start(8)
    if history_page:  # the History's bound, lowered so that minutes reach it
        importlib.import_module("app.state.history").PAGE = history_page

    from app.main import create_window, parse_args
    from app.state.engine import Connection
    from engine.video.sample_clip import write_sample_clip

    app = QApplication.instance() or QApplication([sys.argv[0]])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    controller, window = create_window(parse_args(["--data-dir", data_dir]))
    window.resize(1600, 1000)
    window.show()

    async def until(predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def session() -> None:
        c = controller
        await c.start()
        await until(
            lambda: (
                c.engine.connection in (Connection.ready, Connection.busy)
                and c.engine.active_model is not None
                and c.engine.samplers
            ),
            300,
        )
        gc.collect()
        none0 = sys.getrefcount(None)
        t0 = time.monotonic()
        next_report = t0
        counts = {"images": 0, "grids": 0, "video_plays": 0, "dock_switches": 0}
        clip = write_sample_clip(Path(data_dir) / "sample.mp4")
        docks = window.findChildren(QDockWidget)
        n = 0

        def idle() -> bool:
            return c.jobs.running is None and not c.jobs.queued_ids()

        baseline: dict = {}  # the first report at or after one minute (with --trace-malloc)

        def report(**extra) -> None:
            gc.collect()
            t = time.monotonic() - t0
            sample = {
                "t_s": round(t, 1),
                "app_rss_mib": round(rss_mib(os.getpid()), 1),
                "engine_rss_mib": round(rss_mib(c.local.pid if c.local else None), 1),
                "none_drift": sys.getrefcount(None) - none0,
                **counts,
                **extra,
                "retained": retained(c, window),
                "native_mib": native_mib(os.getpid()),
            }
            if trace:
                sample["traced_mib"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 2)
                if not baseline and t >= 60:
                    baseline.update(
                        t_s=round(t, 1), snapshot=tracemalloc.take_snapshot(), types=type_counts()
                    )
            print("SOAK " + json.dumps(sample), flush=True)

        def trace_report() -> None:
            if not baseline:
                return
            gc.collect()
            types = growth(baseline["types"], type_counts())  # before the diff's own objects
            diff = tracemalloc.take_snapshot().compare_to(baseline["snapshot"], "traceback")
            sites = [
                {
                    "kib": round(d.size_diff / 1024, 1),
                    "count": d.count_diff,
                    "where": [
                        f"{f.filename.removeprefix(str(REPO) + '/')}:{f.lineno}"
                        for f in d.traceback
                    ][-4:],
                }
                for d in diff[:25]
                if d.size_diff > 0
            ]
            print(
                "SOAK_TRACE "
                + json.dumps(
                    {
                        "from_t_s": baseline["t_s"],
                        "to_t_s": round(time.monotonic() - t0, 1),
                        "sites": sites,
                        "types": types,
                    }
                ),
                flush=True,
            )

        while time.monotonic() - t0 < minutes * 60:
            if time.monotonic() >= next_report:
                report()
                next_report += every
            g = c.generation
            g.prompt, g.seed = PROMPTS[n % len(PROMPTS)], n
            g.steps, g.sampler, g.batch_size = 12, ["Euler a", "DDIM", "DPM++ 2M"][n % 3], 2
            window.generate_button.click()
            await until(lambda: not idle(), 30)  # queued…
            await until(idle, 300)  # …and done
            counts["images"] += 2
            for i in (1, 0):
                c.canvas.select(i)
                await asyncio.sleep(0.2)
            dock = docks[n % len(docks)]
            dock.show()
            dock.raise_()
            counts["dock_switches"] += 1
            if n % 4 == 1:  # a small sampler grid
                dialog = window.open_compare()
                if dialog is not None:
                    dialog.set_samplers(["Euler", "DDIM"])
                    dialog.steps_edit.setText("3, 5")
                    dialog.run_button.click()
                    await until(lambda: not idle(), 30)
                    await until(idle, 300)
                    counts["grids"] += 1
            if n % 4 == 3:  # the Video panel: open (once), scrub, play for two seconds
                v, panel = c.video, window.video_panel
                if v.source is None:
                    window.open_video(clip)
                    await until(lambda v=v: v.preview is not None, 120)
                if v.preview is not None:
                    for pos in range(len(v.preview.frames)):
                        panel.frame_slider.setValue(pos)
                        await asyncio.sleep(0.02)
                    panel.play_button.click()
                    await asyncio.sleep(2.0)
                    panel.play_button.click()
                    counts["video_plays"] += 1
            n += 1
        report()
        if trim:  # what of the RSS is malloc's free space, which glibc can give back
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
            report(after_malloc_trim=True)
        if trace:
            trace_report()
        print("SOAK_DONE", flush=True)
        if hard_exit:  # under heaptrack: what is live now stays "leaked" (the engine follows)
            os._exit(0)
        window.close()

    with loop:
        loop.run_until_complete(session())
        loop.run_until_complete(controller.shutdown())
    return 0


# ------------------------------------------------------------------ the parent: watch and time
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--every", type=float, default=30.0, help="seconds between reports")
    p.add_argument("--out", type=Path, help="write the result as JSON here")
    p.add_argument(
        "--python",
        default=sys.executable,
        help="the Python to soak (e.g. a venv with another PySide6)",
    )
    p.add_argument(
        "--trace-malloc",
        action="store_true",
        help="attribute the app's memory growth (tracemalloc sites and object "
        "types grown from minute 1 to the end) in the result",
    )
    p.add_argument(
        "--history-page",
        type=int,
        default=0,
        help="lower the History's list (app.state.history.PAGE, 300) to this many "
        "entries, so that a few minutes reach the bound a day of work reaches",
    )
    p.add_argument(
        "--heaptrack",
        metavar="PREFIX",
        help="run the app under heaptrack, writing PREFIX.zst, and end it without clean-up "
        "(diff two lengths with bench/native_growth.py)",
    )
    p.add_argument(
        "--malloc-trim",
        action="store_true",
        help="at the end, report once more after glibc's malloc_trim(0): the RSS that was "
        "malloc's free space (fragmentation) rather than memory in use",
    )
    p.add_argument("--hard-exit", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data-dir", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(
            args.minutes,
            args.every,
            args.data_dir,
            args.trace_malloc,
            args.history_page,
            args.hard_exit,
            args.malloc_trim,
        )

    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")
    with tempfile.TemporaryDirectory(prefix="sfumato-soak-") as data_dir:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            (["heaptrack", "-o", args.heaptrack] if args.heaptrack else [])
            + [
                args.python,
                __file__,
                "--child",
                "--minutes",
                str(args.minutes),
                "--every",
                str(args.every),
                "--data-dir",
                data_dir,
            ]
            + (["--trace-malloc"] if args.trace_malloc else [])
            + (["--history-page", str(args.history_page)] if args.history_page else [])
            + (["--hard-exit"] if args.heaptrack else [])
            + (["--malloc-trim"] if args.malloc_trim else []),
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        samples, done, trace = [], False, None
        for line in proc.stdout:
            if line.startswith("SOAK_TRACE "):
                trace = json.loads(line[len("SOAK_TRACE ") :])
            elif line.startswith("SOAK "):
                samples.append(json.loads(line[5:]))
                print(line.strip(), flush=True)
            elif line.startswith("SOAK_DONE"):
                done = True
        code = proc.wait()
        wall = time.monotonic() - t0
        err = proc.stderr.read()
    import PySide6

    result = {
        "python": sys.version.split()[0],
        "pyside6": subprocess.run(
            [args.python, "-c", "import PySide6; print(PySide6.__version__)"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        or PySide6.__version__,
        "platform": env["QT_QPA_PLATFORM"],
        "minutes_asked": args.minutes,
        "history_page": args.history_page or None,
        "crash_free_minutes": round((samples[-1]["t_s"] if samples else 0) / 60, 2),
        "completed": done and code == 0,
        "exit_code": code,
        "wall_s": round(wall, 1),
        "samples": samples,
        "fatal": next((ln for ln in err.splitlines() if "Fatal Python error" in ln), ""),
    }
    if trace is not None:
        result["trace_malloc"] = trace
    if not result["completed"]:
        result["stderr_tail"] = err.splitlines()[-20:]
    summary = {k: v for k, v in result.items() if k not in ("samples", "trace_malloc")}
    if samples:
        summary["app_rss_mib"] = [samples[0]["app_rss_mib"], samples[-1]["app_rss_mib"]]
        summary["engine_rss_mib"] = [samples[0]["engine_rss_mib"], samples[-1]["engine_rss_mib"]]
        summary["none_drift_min"] = min(s["none_drift"] for s in samples)
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0 if result["completed"] else 1


if __name__ == "__main__":
    sys.exit(main())
