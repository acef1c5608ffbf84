"""Does the engine's memory grow with the jobs it has run? RSS over many generate jobs on the
built-in model (sfumato-tiny).

    python bench/memory_jobs.py [--jobs 500] [--steps 4] [--json out.json]

Starts ``sfumato-engine`` on the embedded model (no --model: its default), queues ``--jobs``
generate jobs (128², a new prompt and seed each, so the prompt-encoding path runs every time),
and reads the engine's resident memory (``/proc/<pid>/status`` VmRSS, Linux) each time another
5 % of the jobs is done. Reports RSS after the first 10 % (warm: model loaded, caches filled)
and at the end, and the growth per 100 jobs fitted over the rest (least squares). A leak shows
as a steady positive slope; allocator noise as a few MiB either way.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=500)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from tests.support.engine_proc import EngineProcess

    def call(method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{engine.url}/v1{path}",
            data=data,
            method=method,
            headers={**engine.headers, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    with tempfile.TemporaryDirectory(prefix="sfumato-memory-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        (Path(tmp) / "models").mkdir()
        engine = EngineProcess(data, Path(tmp) / "models").start()
        samples: list[tuple[int, float]] = [(0, rss_mib(engine.proc.pid))]
        t0 = time.monotonic()
        try:
            for i in range(args.jobs):
                call(
                    "POST",
                    "/jobs",
                    {
                        "job": {
                            "kind": "generate",
                            "params": {
                                "prompt": f"a small red apple number {i}",
                                "seed": i,
                                "steps": args.steps,
                                "width": args.size,
                                "height": args.size,
                            },
                        }
                    },
                )
            every = max(1, args.jobs // 20)
            next_mark = every
            while True:
                health = call("GET", "/health")  # /v1/jobs lists only the newest 200
                finished = args.jobs - health["queued"] - (health["state"] != "ready")
                failed = [j["message"] for j in call("GET", "/jobs") if j["state"] == "failed"]
                if failed:
                    raise RuntimeError(f"a job failed: {failed[0]}")
                if finished >= next_mark or finished == args.jobs:
                    samples.append((finished, rss_mib(engine.proc.pid)))
                    print(f"{finished} jobs: {samples[-1][1]:.0f} MiB", file=sys.stderr, flush=True)
                    next_mark = finished + every
                if finished == args.jobs:
                    break
                time.sleep(0.5)
            health = call("GET", "/health")
        finally:
            engine.stop()
    warm = next(s for s in samples if s[0] >= max(1, args.jobs // 10))
    rest = [s for s in samples if s[0] >= warm[0]]
    n = len(rest)
    mx = sum(x for x, _ in rest) / n
    my = sum(y for _, y in rest) / n
    var = sum((x - mx) ** 2 for x, _ in rest)
    slope = sum((x - mx) * (y - my) for x, y in rest) / var if var else 0.0
    result = {
        "jobs": args.jobs,
        "steps": args.steps,
        "size": args.size,
        "model": health.get("model"),
        "device": health.get("device"),
        "seconds": round(time.monotonic() - t0, 1),
        "rss_start_mib": round(samples[0][1], 1),
        "rss_warm_mib": round(warm[1], 1),
        "warm_after_jobs": warm[0],
        "rss_end_mib": round(samples[-1][1], 1),
        "growth_after_warm_mib": round(samples[-1][1] - warm[1], 1),
        "slope_mib_per_100_jobs": round(slope * 100, 2),
        "samples": [[x, round(y, 1)] for x, y in samples],
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
