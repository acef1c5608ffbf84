"""Fuzz every engine route from its OpenAPI schema with many more cases than the test suite.

    python bench/fuzz.py [--examples 200] [--seed N]

Runs tests/engine/test_fuzz.py's loop (schemathesis strategies, hypothesis) against the real
engine app in this process (no queue worker: fuzzed jobs are queued, never rendered) and prints
the cases per route and every response ≥ 500 it found. Without --seed each run explores anew.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=200, help="cases per route")
    ap.add_argument("--seed", type=int, default=None, help="derandomize (repeatable run)")
    ap.add_argument("--json", type=Path, default=None, help="also write the summary here")
    args = ap.parse_args()
    from tests.support.fuzz import fuzz_routes
    from tests.support.inprocess import AUTH, engine_app
    from tests.support.tiny_sd import build_tiny_sd

    with tempfile.TemporaryDirectory(prefix="sfumato-fuzz-") as tmp:
        root = Path(tmp)
        build_tiny_sd(root / "models" / "tiny-sd")
        app, engine = engine_app(root / "data", root / "models")
        t0 = time.perf_counter()
        counts, failures = fuzz_routes(app, args.examples, args.seed)
        seconds = time.perf_counter() - t0
        from starlette.testclient import TestClient

        healthy = TestClient(app, headers=AUTH).get("/v1/health").status_code == 200
        integrity = engine.store.integrity_check()
    summary = {
        "cases": sum(counts.values()),
        "routes": len(counts),
        "seconds": round(seconds, 1),
        "failures": len(failures),
        "healthy_after": healthy,
        "integrity_check": integrity,
        "per_route": counts,
    }
    print(json.dumps(summary, indent=1))
    for failure in failures:
        print("----", failure)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 1 if failures or not healthy or integrity != "ok" else 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Fuzzed requests loaded models and opened files in worker threads; the C++ thread pools
    # they leave abort a normal interpreter exit ("terminate called without an active
    # exception"). Everything is reported: leave at once, as the engine does.
    os._exit(code)
