"""The engine never outlives the app: an app process that starts the real engine through
:class:`app.engine_process.LocalEngine` is killed, and its engine exits at once.

The app is left a zombie (this test, its parent, does not reap it), the case where polling
its PID alone never notices the death; the engine must see its stdin pipe close instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.support.engine_proc import REPO

pytestmark = pytest.mark.slow

APP = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from PySide6.QtCore import QCoreApplication
    import qasync
    from app.engine_process import EngineLaunch, LocalEngine

    root = Path(sys.argv[1])
    qt = QCoreApplication([])
    loop = qasync.QEventLoop(qt)
    asyncio.set_event_loop(loop)

    async def main():
        engine = LocalEngine(EngineLaunch(
            data_dir=root / "data", output_dir=root / "out", model="tiny-sd",
            models_dirs=[Path(sys.argv[2])], cwd=Path(sys.argv[3])))
        await engine.start()
        print("ENGINE_PID", engine.pid, flush=True)
        await asyncio.sleep(3600)

    loop.run_until_complete(main())
""")


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_the_engine_exits_when_the_app_dies(tmp_path, tiny_models_dir, sig):
    script = tmp_path / "app_stand_in.py"
    script.write_text(APP)
    env = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"}
    app = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), str(tiny_models_dir), str(REPO)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    engine_pid = None
    try:
        deadline = time.monotonic() + 240
        while engine_pid is None and time.monotonic() < deadline:
            line = app.stdout.readline()
            if line.startswith("ENGINE_PID"):
                engine_pid = int(line.split()[1])
            elif not line and app.poll() is not None:
                break
        assert engine_pid, "the stand-in app did not start its engine"
        assert _alive(engine_pid)
        os.kill(app.pid, sig)  # not reaped until the end: a zombie keeps its PID
        t0 = time.monotonic()
        while _alive(engine_pid) and time.monotonic() - t0 < 20:
            time.sleep(0.05)
        waited = time.monotonic() - t0
        print(f"engine exited {waited:.2f} s after the app ({sig.name})")
        assert not _alive(engine_pid), "the engine outlived the app by 20 s"
        # The goal is 2 s; on a machine this busy the interpreter's exit alone can take one.
        assert waited < 6, f"the engine took {waited:.1f} s to exit after the app died"
    finally:
        if engine_pid and _alive(engine_pid):
            os.kill(engine_pid, signal.SIGKILL)
        app.kill()
        app.wait(10)
