"""Issue 14 item 2: the app is killed mid-session (SIGKILL, a real process) and the next start
offers the session back: prompt, settings, uncertainty toggle, map colours, the image on the
canvas, the Video panel's clip and frame range. A clean exit is not offered back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.video.sample_clip import write_sample_clip
from tests.support.engine_proc import REPO, EngineProcess

pytestmark = pytest.mark.slow


def recipe_png(path: Path) -> Path:
    """A PNG as the engine saves one: A1111 text and our JSON recipe."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from engine.protocol import GenerateParams, recipe_json

    params = GenerateParams(prompt="a quiet harbour", width=64, height=64, steps=8, seed=777)
    info = PngInfo()
    info.add_text("parameters", params.to_a1111(seed=777))
    info.add_text("sfumato", recipe_json(params, seed=777, model_name="tiny", index=0))
    Image.new("RGB", (64, 64), (10, 20, 30)).save(path, pnginfo=info)
    return path


class AppProcess:
    """``python -m tests.support.app_driver SCRIPT … -- <app args>`` with its stdout read."""

    def __init__(self, script: list[str], app_args: list[str], log: Path):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "QT_QPA_PLATFORM": "offscreen"}
        env.pop("SFUMATO_RESTORE", None)
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.app_driver", *script, "--", *app_args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self.lines: list[str] = []

    def wait_for(self, word: str, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("DRIVER "):
                self.lines.append(line.strip())
                if line.split()[1] == "error":
                    raise AssertionError(line)
                if line.split()[1] == word:
                    return line.split(" ", 2)[2].strip() if len(line.split()) > 2 else ""
            elif not line and self.proc.poll() is not None:
                break
        raise AssertionError(f"no 'DRIVER {word}' (exit {self.proc.poll()}); saw {self.lines}")

    def stop(self) -> int | None:
        try:
            return self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._log.close()


def test_killed_app_offers_its_session_back(tmp_path: Path, tiny_models_dir: Path):
    sfumato_png = recipe_png(tmp_path / "harbour.png")
    engine = EngineProcess(tmp_path / "engine", tiny_models_dir)
    engine.data_dir.mkdir()
    engine.start(timeout=120)
    clip = write_sample_clip(tmp_path / "sample.mp4", frames=16)
    data = tmp_path / "data"
    args = ["--data-dir", str(data), "--engine-url", engine.url, "--engine-token", engine.token]
    log = tmp_path / "app-stderr.log"
    try:
        first = AppProcess(["work", str(sfumato_png), str(clip)], args, log)
        first.wait_for("saved")
        first.proc.send_signal(signal.SIGKILL)  # no goodbye: as a crash ends it
        assert first.stop() == -signal.SIGKILL
        saved = json.loads((data / "session.json").read_text())
        assert saved["clean"] is False

        second = AppProcess(["restore"], args, log)
        question = json.loads(second.wait_for("asked"))
        assert "closed unexpectedly" in question and "a lighthouse in the fog" in question
        state = json.loads(second.wait_for("restored"))
        assert second.stop() == 0
        assert state == {
            "prompt": "a lighthouse in the fog, oil painting",
            "steps": 17,
            "seed": 1234,
            "uncertainty": True,
            "colormap": "cividis",
            "canvas": str(sfumato_png),
            "clip": str(clip),
            "range": [2, 10, 2],
            "target_prompt": "t-rex on a blue background",
            "video_dock": True,
        }
        assert json.loads((data / "session.json").read_text())["clean"] is True

        third = AppProcess(["fresh"], args, log)  # the restored session closed cleanly
        third.wait_for("not-asked", 120)
        assert third.stop() == 0
    finally:
        engine.stop()
