"""Start-up stays light: the GUI never imports torch, diffusers or engine internals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
import app.main, app.controller, app.client, app.ui.main_window, app.engine_process
from app.main import create_window, parse_args
from PySide6.QtWidgets import QApplication
qt = QApplication([])
controller, win = create_window(parse_args(["--data-dir", sys.argv[1], "--no-engine"]))
win.show()
heavy = sorted(m for m in sys.modules
               if m.split(".")[0] in ("torch", "diffusers", "transformers", "safetensors"))
# The wire contract (pydantic only) is the one part of engine/ the GUI may import.
# engine.architecture: the architectures' facts (no torch), re-exported by engine.protocol.
protocol = ("engine.protocol", "engine.video_protocol", "engine.robustness_protocol",
            "engine.prompts_protocol", "engine.architecture")
engine = sorted(m for m in sys.modules if m.startswith("engine.") and m not in protocol)
print("HEAVY", heavy)
print("ENGINE", engine)
"""


def test_window_imports_nothing_heavy(tmp_path: Path):
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    assert "ENGINE []" in out.stdout


def test_cli_help():
    out = subprocess.run(
        [sys.executable, "-m", "app", "--help"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"QT_QPA_PLATFORM": "offscreen"},
    )
    assert out.returncode == 0
    for flag in ("--data-dir", "--engine-url", "--engine-token", "--model", "--models-dir"):
        assert flag in out.stdout
