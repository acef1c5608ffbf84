"""Kill the engine with SIGKILL at random moments and right at image writes; lose nothing.

    python bench/durability.py [--kills 20] [--jobs 6] [--seed 0] [--json out.json]

Starts ``sfumato-engine`` with the tiny random test model, queues ``--jobs`` generate jobs
(64², 3 steps, 2 batches of 2 images), then ``--kills`` times: waits either a random moment or
until an image file appears in the output folder (the write boundary: ``*.png.part`` or a fresh
``*.png`` whose record is not saved yet), SIGKILLs the engine and starts it again. At the end
every job must be done once with every index 0..3 exactly once, every PNG present and valid,
no ``.part`` file left, no stray PNG, and SQLite's ``integrity_check`` ok.

A job running in 3 engine crashes is failed on purpose (engine/jobs.py, MAX_CRASHES): the bench
never kills an engine whose running job has already been through 2, so that rule does not
mask what is measured here. ``tests/engine/test_durability.py`` runs a short version.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BATCH_SIZE, BATCH_COUNT = 2, 2


def call(engine, method: str, path: str, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"{engine.url}/v1{path}",
        data=data,
        method=method,
        headers={**engine.headers, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def image_files(out: Path) -> set[str]:
    return {str(p) for p in out.rglob("*.png*")} if out.is_dir() else set()


def wait_for_write(out: Path, engine, timeout: float) -> bool:
    """Poll the output folder every millisecond until a new image file shows up."""
    before = image_files(out)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and engine.proc.poll() is None:
        if image_files(out) - before:
            return True
        time.sleep(0.001)
    return False


def running_job(db: Path) -> str | None:
    """The job the queue database says is running: the one the next engine counts a crash
    for (read from the file, as the next engine will; WAL lets us read beside the writer)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        row = con.execute("SELECT id FROM jobs WHERE state='running'").fetchone()
    finally:
        con.close()
    return row[0] if row else None


def all_finished(engine, ids) -> bool:
    return all(
        call(engine, "GET", f"/jobs/{i}")["state"] in ("done", "failed", "cancelled") for i in ids
    )


def run(kills: int, n_jobs: int, seed: int, root: Path, log=print) -> dict:
    from tests.support.engine_proc import EngineProcess
    from tests.support.tiny_sd import build_tiny_sd

    rng = random.Random(seed)
    build_tiny_sd(root / "models" / "tiny-sd")
    data = root / "data"
    data.mkdir()
    out = data / "outputs"
    engine = EngineProcess(data, root / "models", extra_args=["--model", "tiny-sd"])
    engine.start()
    ids = []
    for i in range(n_jobs):
        params = {
            "prompt": f"durability {i}",
            "width": 64,
            "height": 64,
            "steps": 3,
            "seed": 100 * i,
            "batch_size": BATCH_SIZE,
            "batch_count": BATCH_COUNT,
        }
        ids.append(
            call(engine, "POST", "/jobs", {"job": {"kind": "generate", "params": params}})["id"]
        )
    crashes: dict[str, int] = {}
    modes = {"random": 0, "write": 0}
    t0 = time.monotonic()
    try:
        done_kills = 0
        while done_kills < kills:
            if all_finished(engine, ids):
                # All done before the kills ran out: queue one more job to crash into.
                params = {
                    "prompt": f"extra {done_kills}",
                    "width": 64,
                    "height": 64,
                    "steps": 3,
                    "seed": 7 + done_kills,
                    "batch_size": BATCH_SIZE,
                    "batch_count": BATCH_COUNT,
                }
                ids.append(
                    call(engine, "POST", "/jobs", {"job": {"kind": "generate", "params": params}})[
                        "id"
                    ]
                )
            mode = "write" if rng.random() < 0.5 else "random"
            if mode == "write":
                hit = wait_for_write(out, engine, timeout=120)
                if not hit:
                    continue
            else:
                time.sleep(rng.uniform(0.05, 2.0))
            job = running_job(data / "engine.sqlite")
            if job is not None and crashes.get(job, 0) >= 2:
                continue  # a third crash would fail it by design (MAX_CRASHES)
            engine.kill()
            job = running_job(data / "engine.sqlite")  # what the kill actually interrupted
            if job is not None:
                crashes[job] = crashes.get(job, 0) + 1
            modes[mode] += 1
            done_kills += 1
            log(f"kill {done_kills}/{kills} ({mode}) while {job or 'nothing'} ran")
            engine.start()
        deadline = time.monotonic() + 900
        while not all_finished(engine, ids):
            if time.monotonic() > deadline:
                raise TimeoutError("jobs did not finish within 15 minutes of the last kill")
            time.sleep(0.2)
        jobs = [call(engine, "GET", f"/jobs/{i}") for i in ids]
    finally:
        engine.stop()
    return check(jobs, out, data / "engine.sqlite") | {
        "kills": kills,
        "kills_by_mode": modes,
        "jobs": len(ids),
        "seconds": round(time.monotonic() - t0, 1),
        "max_crashes_per_job": max(crashes.values(), default=0),
    }


def check(jobs: list[dict], out: Path, db: Path) -> dict:
    """Every problem found, as text: an empty list is a pass."""
    from PIL import Image

    problems, recorded = [], set()
    for job in jobs:
        if job["state"] != "done":
            problems.append(f"{job['id']}: {job['state']} ({job['message']})")
        indices = [r["index"] for r in job["results"]]
        if sorted(indices) != list(range(BATCH_SIZE * BATCH_COUNT)):
            problems.append(f"{job['id']}: indices {indices}")
        for r in job["results"]:
            recorded.add(r["path"])
            try:
                with Image.open(r["path"]) as im:
                    im.load()
                    if im.size != (64, 64):
                        problems.append(f"{r['path']}: size {im.size}")
            except Exception as exc:  # noqa: BLE001 - every kind of bad file is a finding
                problems.append(f"{r['path']}: {type(exc).__name__}: {exc}")
    on_disk = image_files(out)
    parts = sorted(p for p in on_disk if p.endswith(".part"))
    strays = sorted(p for p in on_disk if p.endswith(".png") and p not in recorded)
    problems += [f"left over: {p}" for p in parts] + [f"not recorded: {p}" for p in strays]
    con = sqlite3.connect(db)
    integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
    con.close()
    if integrity != "ok":
        problems.append(f"integrity_check: {integrity}")
    return {"problems": problems, "images": len(recorded), "integrity_check": integrity}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sfumato-durability-") as tmp:
        result = run(
            args.kills,
            args.jobs,
            args.seed,
            Path(tmp),
            log=lambda m: print(m, file=sys.stderr, flush=True),
        )
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
