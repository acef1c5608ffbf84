"""Does the engine stay responsive under a burst of submissions? /v1/health latency while 200
jobs are submitted at once to a real engine process.

    python bench/api_latency.py [--jobs 200] [--runs 3] [--preload] [--json out.json]

Starts ``sfumato-engine`` with the tiny random test model and polls ``GET /v1/health`` from
:data:`POLLERS` processes of their own (each on one keep-alive connection, as the app's client
keeps them) while ``--jobs`` generate jobs (64², 1 step) are posted concurrently from this
process, and reports the health latency's p50 / p99 / max over the samples sent during the
burst, and how long the burst took. The pollers are separate processes so that what is timed
is the engine's answer, not this script's own event loop, busy with 200 submissions.
``--preload`` waits for the model to be loaded first (otherwise the first job loads it during
the burst, as after a fresh start). Goal (issue 16): health p99 ≤ 50 ms. Queued jobs are
cancelled afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
#: Health checks in flight at once, each from its own process and connection.
POLLERS = 4
#: A sample slower than this is listed with its time into the burst.
SLOW_S = 0.05


def poll_health(url: str, headers: dict, stop, out) -> None:
    """One poller process: GET /v1/health on one keep-alive connection until ``stop`` is set;
    puts its (start, seconds) samples on ``out``. ``time.perf_counter`` is the system's
    monotonic clock on Linux and macOS, so the samples line up with the burst's times."""
    import http.client
    import urllib.parse

    parts = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    samples = []
    while not stop.is_set():
        t0 = time.perf_counter()
        conn.request("GET", f"{parts.path}/health", headers=headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status
        samples.append((t0, time.perf_counter() - t0))
        time.sleep(0.002)
    out.put(samples)


async def submit_all(url: str, headers: dict, n_jobs: int) -> list[str]:
    import aiohttp

    conn = aiohttp.TCPConnector(limit=n_jobs)
    async with aiohttp.ClientSession(headers=headers, connector=conn) as s:

        async def one(i: int) -> str:
            body = {
                "job": {
                    "kind": "generate",
                    "params": {
                        "prompt": f"burst {i}",
                        "width": 64,
                        "height": 64,
                        "steps": 1,
                        "seed": i,
                    },
                }
            }
            async with s.post(f"{url}/jobs", json=body) as r:
                assert r.status == 201, await r.text()
                return (await r.json())["id"]

        return await asyncio.gather(*(one(i) for i in range(n_jobs)))


async def cancel_all(url: str, headers: dict, ids: list[str]) -> None:
    import aiohttp

    async with aiohttp.ClientSession(headers=headers) as s:
        for job_id in ids:
            async with s.delete(f"{url}/jobs/{job_id}") as r:
                await r.read()


async def wait_for_model(url: str, headers: dict, timeout: float = 120) -> None:
    import aiohttp

    async with aiohttp.ClientSession(headers=headers) as s:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            async with s.post(f"{url}/models/load", json={}) as r:
                if r.status == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError("the model did not load")


def burst(engine, n_jobs: int, preload: bool) -> dict:
    url = f"{engine.url}/v1"
    if preload:
        asyncio.run(wait_for_model(url, engine.headers))
    ctx = multiprocessing.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    pollers = [
        ctx.Process(target=poll_health, args=(url, engine.headers, stop, out))
        for _ in range(POLLERS)
    ]
    for p in pollers:
        p.start()
    time.sleep(1.5)  # the pollers start (spawn) and take a few quiet samples
    t0 = time.perf_counter()
    ids = asyncio.run(submit_all(url, engine.headers, n_jobs))
    t1 = time.perf_counter()
    stop.set()
    samples = [s for _ in pollers for s in out.get(timeout=60)]
    for p in pollers:
        p.join()
    asyncio.run(cancel_all(url, engine.headers, ids))
    quiet = sorted(d for start, d in samples if start < t0) or [0.0]
    during = sorted(d for start, d in samples if t0 <= start <= t1) or [0.0]
    slow = sorted((start, d) for start, d in samples if t0 <= start <= t1 and d > SLOW_S)

    def pct(values: list[float], q: float) -> float:
        return round(values[min(len(values) - 1, round(q * (len(values) - 1)))] * 1000, 1)

    return {
        "jobs": n_jobs,
        "preload": preload,
        "burst_s": round(t1 - t0, 3),
        "quiet_p50_ms": pct(quiet, 0.5),
        "health_samples": len(during),
        "health_p50_ms": pct(during, 0.5),
        "health_p99_ms": pct(during, 0.99),
        "health_max_ms": round(during[-1] * 1000, 1),
        "health_mean_ms": round(statistics.fmean(during) * 1000, 1),
        # (ms into the burst, ms taken) of every sample over SLOW_S
        "slow": [(round((start - t0) * 1000), round(d * 1000)) for start, d in slow],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--runs", type=int, default=1, help="bursts, each on a fresh engine")
    ap.add_argument("--preload", action="store_true", help="load the model before the burst")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from tests.support.engine_proc import EngineProcess
    from tests.support.tiny_sd import build_tiny_sd

    results = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="sfumato-latency-") as tmp:
            root = Path(tmp)
            build_tiny_sd(root / "models" / "tiny-sd")
            (root / "data").mkdir()
            engine = EngineProcess(
                root / "data", root / "models", extra_args=["--model", "tiny-sd"]
            )
            engine.start()
            try:
                results.append(burst(engine, args.jobs, args.preload))
            finally:
                engine.stop()
        print(json.dumps(results[-1]), flush=True)
    p99s = [r["health_p99_ms"] for r in results]
    summary = {"runs": results, "worst_p99_ms": max(p99s), "median_p99_ms": statistics.median(p99s)}
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
