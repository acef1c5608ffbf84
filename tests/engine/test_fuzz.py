"""Property-based fuzzing of every route from the engine's own OpenAPI schema: no input, valid
or not, gets a 5xx, and the engine answers its health check after (SQLite integrity too).

Runs ``bench/fuzz.py`` with a few cases per route in a process of its own (the real engine
app without its queue worker: fuzzed jobs are queued, never rendered); the bench runs many
more. Its own process because fuzzed requests load models and open videos in worker threads,
whose C++ thread pools abort an interpreter's exit (the bench, like the engine, exits with
``os._exit`` once its results are out).
"""

import json
import os
import subprocess
import sys

import pytest

from tests.support.engine_proc import REPO

pytestmark = pytest.mark.slow

#: Cases per route here (CI time); bench/fuzz.py defaults to 200.
EXAMPLES = int(os.environ.get("SFUMATO_FUZZ_EXAMPLES", "15"))


def test_no_request_gets_a_server_error_and_the_engine_stays_healthy(tmp_path):
    out = tmp_path / "fuzz.json"
    run = subprocess.run(
        [
            sys.executable,
            "bench/fuzz.py",
            "--examples",
            str(EXAMPLES),
            "--seed",
            "0",
            "--json",
            str(out),
        ],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    result = json.loads(out.read_text())
    assert result["failures"] == 0 and result["healthy_after"]
    assert result["integrity_check"] == "ok"
    counts = result["per_route"]
    assert len(counts) >= 15 and all(counts.values()), counts  # every route, each reached
    assert result["cases"] >= 10 * EXAMPLES
