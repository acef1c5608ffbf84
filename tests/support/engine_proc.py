"""Start and stop a real ``sfumato-engine`` process for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class EngineProcess:
    data_dir: Path
    models_dir: Path
    token: str = "test-token"
    extra_args: list[str] = field(default_factory=list)
    url: str = ""
    proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> EngineProcess:
        env = {**os.environ, "SFUMATO_ENGINE_TOKEN": self.token, "PYTHONUNBUFFERED": "1"}
        with open(self.data_dir / "stderr.log", "ab") as stderr:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "engine.cli",
                    "--port",
                    "0",
                    "--data-dir",
                    str(self.data_dir),
                    "--models-dir",
                    str(self.models_dir),
                    *self.extra_args,
                ],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("SFUMATO_ENGINE_READY "):
                self.url = line.split()[1]
                return self
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        log = (self.data_dir / "stderr.log").read_text()[-3000:]
        raise RuntimeError(f"engine did not start:\n{log}")

    def kill(self) -> None:
        """SIGKILL: the engine gets no chance to clean up (a crash)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}
