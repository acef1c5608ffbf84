"""Does the engine stay responsive under a burst of submissions? /v1/health latency while 200
jobs are submitted at once to a real engine process.

    python bench/api_latency.py [--jobs 200] [--json out.json]

Starts ``sfumato-engine`` with the tiny random test model, polls ``GET /v1/health`` from 4
clients of their own while ``--jobs`` generate jobs (64², 1 step) are posted
concurrently, and reports the health latency's p50 / p99 / max and how long the burst took.
Goal (issue 16): health p99 ≤ 50 ms. Queued jobs are cancelled afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
#: Health checks in flight at once (each on its own connection): more samples per burst.
POLLERS = 4


async def burst(engine, n_jobs: int) -> dict:
    import aiohttp

    url = f"{engine.url}/v1"
    headers = engine.headers
    latencies: list[float] = []
    done = asyncio.Event()

    async def poll_health() -> None:
        async with aiohttp.ClientSession(headers=headers) as s:
            while not done.is_set():
                t0 = time.perf_counter()
                async with s.get(f"{url}/health") as r:
                    await r.read()
                    assert r.status == 200
                latencies.append(time.perf_counter() - t0)
                await asyncio.sleep(0.002)

    async def submit_all() -> list[str]:
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

    pollers = [asyncio.create_task(poll_health()) for _ in range(POLLERS)]
    await asyncio.sleep(0.5)  # a few quiet samples first
    quiet = len(latencies)
    t0 = time.perf_counter()
    ids = await submit_all()
    burst_s = time.perf_counter() - t0
    done.set()
    await asyncio.gather(*pollers)
    during = sorted(latencies[quiet:]) or [0.0]
    async with aiohttp.ClientSession(headers=headers) as s:
        for job_id in ids:
            async with s.delete(f"{url}/jobs/{job_id}") as r:
                await r.read()

    def pct(q: float) -> float:
        return during[min(len(during) - 1, round(q * (len(during) - 1)))] * 1000

    return {
        "jobs": n_jobs,
        "burst_s": round(burst_s, 3),
        "health_samples": len(during),
        "health_p50_ms": round(pct(0.5), 1),
        "health_p99_ms": round(pct(0.99), 1),
        "health_max_ms": round(during[-1] * 1000, 1),
        "health_mean_ms": round(statistics.fmean(during) * 1000, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from tests.support.engine_proc import EngineProcess
    from tests.support.tiny_sd import build_tiny_sd

    with tempfile.TemporaryDirectory(prefix="sfumato-latency-") as tmp:
        root = Path(tmp)
        build_tiny_sd(root / "models" / "tiny-sd")
        (root / "data").mkdir()
        engine = EngineProcess(root / "data", root / "models", extra_args=["--model", "tiny-sd"])
        engine.start()
        try:
            result = asyncio.run(burst(engine, args.jobs))
        finally:
            engine.stop()
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
