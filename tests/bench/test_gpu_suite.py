"""bench/gpu_suite.py --dry-run: every stage of the GPU suite runs on the CPU at toy sizes and
writes results.json with the issue's keys and the table (the suite itself is owed a GPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def test_dry_run_runs_every_stage(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench/gpu_suite.py"),
            "--dry-run",
            "--budget",
            "1500",
            "--out-dir",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1700,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    r = json.loads((out / "results.json").read_text())
    assert set(r) == {
        "device",
        "date",
        "torch",
        "diffusers",
        "tests",
        "sd15",
        "sdxl",
        "warmup",
        "uncertainty",
        "video",
        "sd35",
        "flux",
        "stages",
    }
    assert r["device"] == "cpu (dry run)"
    assert all(s["status"] == "ok" for s in r["stages"].values()), r["stages"]
    assert r["tests"]["failed"] == 0  # the gpu tests are skipped on the CPU
    sd = r["sd15"]
    for key in ("plain_s_per_image", "engine_s_per_image", "fast_s_per_image"):
        assert sd[key] > 0 and sd["batch2"][key] > 0 and r["sdxl"][key] > 0
    assert set(sd["peak_gib"]) == {"plain", "engine", "fast"}
    assert r["warmup"]["cold_s"] > 0 and r["warmup"]["cached_s"] > 0
    assert r["uncertainty"]["overhead"] > 0
    assert r["video"]["lovecon_48_s"] > 0 and r["video"]["controlvideo_8_s"] > 0
    for arch in ("sd35", "flux"):  # issue 21: random SD3.5-medium and Flux, three rows each
        for key in ("plain_s_per_image", "engine_s_per_image", "fast_s_per_image"):
            assert r[arch][key] > 0, (arch, key)
        assert r[arch]["fast_path_state"] == "off"  # the fast path compiles UNets only
    table = (out / "README.md").read_text()
    assert "| SD 1.5 512²" in table and "| sdxl |" in table
    assert "| Flux.1-dev 1024²" in table and "| SD3.5-medium 1024²" in table


def test_the_flow_stages_run_only_on_request():
    sys.path.insert(0, str(REPO))
    import bench.gpu_suite as suite

    assert set(suite.ON_REQUEST) == {"sd35", "flux"} <= set(suite.STAGES)
    from bench.flow_random import configs

    real, tiny = configs("flux"), configs("flux", tiny=True)
    assert real["transformer"]["num_single_layers"] == 38  # resources/configs/flux, as shipped
    assert tiny["transformer"]["num_single_layers"] == 1
    assert configs("sd35")["transformer"]["dual_attention_layers"] == list(range(13))


def test_a_stage_over_its_budget_is_cut_and_reported(tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO))
    import bench.gpu_suite as suite

    monkeypatch.setitem(suite.STAGES, "tests", 1)
    args = suite.argparse.Namespace(dry_run=True)
    data, stage = suite.run_stage("tests", args, 0.5, tmp_path)
    assert stage["status"] == "cut at 0 s" or stage["status"].startswith("cut at")
    assert data == {}
