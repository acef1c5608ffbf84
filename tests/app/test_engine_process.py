"""The process manager's start / ready / crash → restart logic, with stand-in processes.

These check process plumbing only (reading the READY line, restarts, give-up); the end-to-end
tests start the real engine.
"""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from pathlib import Path

import pytest

from app.engine_process import EngineLaunch, EngineStartError, LocalEngine


def script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "fake_engine.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def launch(tmp_path: Path, command: list[str], **kw) -> EngineLaunch:
    return EngineLaunch(
        data_dir=tmp_path / "data", output_dir=tmp_path / "out", command=command, **kw
    )


def test_argv_passes_everything_through(tmp_path: Path):
    la = EngineLaunch(
        data_dir=tmp_path / "d",
        output_dir=tmp_path / "o",
        model="tinysd",
        models_dirs=[Path("/m1"), Path("/m2")],
        extra_args=["--device", "cpu"],
        command=["engine"],
    )
    assert la.argv() == [
        "engine",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--exit-with-stdin",
        "--data-dir",
        str(tmp_path / "d"),
        "--output-dir",
        str(tmp_path / "o"),
        "--model",
        "tinysd",
        "--models-dir",
        "/m1",
        "--models-dir",
        "/m2",
        "--device",
        "cpu",
    ]


def test_env_overrides(monkeypatch):
    monkeypatch.setenv("SFUMATO_ENGINE_CMD", "python3 -m my.engine")
    monkeypatch.setenv("SFUMATO_ENGINE_ARGS", "--device cpu --log-level 'debug'")
    assert EngineLaunch.command_from_env() == ["python3", "-m", "my.engine"]
    assert EngineLaunch.args_from_env() == ["--device", "cpu", "--log-level", "debug"]


async def test_ready_line_gives_the_url_and_token_is_passed(tmp_path: Path):
    cmd = script(
        tmp_path,
        """
        import os, sys, time
        print("some noise", flush=True)
        print("noise on stderr", file=sys.stderr, flush=True)
        sys.stdout.write("SFUMATO_ENGINE_READY http://127.0.0.1:5")
        sys.stdout.flush()
        time.sleep(0.2)
        print("555", flush=True)  # the line arrives in two pieces
        open(sys.argv[sys.argv.index("--data-dir") + 1] + "/token", "w").write(
            os.environ["SFUMATO_ENGINE_TOKEN"])
        time.sleep(60)
    """,
    )
    engine = LocalEngine(launch(tmp_path, cmd))
    try:
        url = await engine.start()
        assert url == "http://127.0.0.1:5555"
        assert engine.running and engine.pid
        for _ in range(400):
            if (tmp_path / "data" / "token").exists():
                break
            await asyncio.sleep(0.05)
        assert (tmp_path / "data" / "token").read_text() == engine.token
        assert len(engine.token) >= 32
        if hasattr(os, "getpriority"):  # reniced so the window stays responsive
            assert (
                os.getpriority(os.PRIO_PROCESS, engine.pid)
                >= os.getpriority(os.PRIO_PROCESS, 0) + 5
                or os.getpriority(os.PRIO_PROCESS, engine.pid) == 19
            )
    finally:
        await engine.stop()
    assert not engine.running
    log = (tmp_path / "data" / "engine-console.log").read_text()
    assert "noise on stderr" in log


async def test_exit_before_ready_is_an_error_with_output(tmp_path: Path):
    cmd = script(
        tmp_path,
        """
        import sys
        print("ImportError: no module named torch", file=sys.stderr)
        sys.exit(3)
    """,
    )
    engine = LocalEngine(launch(tmp_path, cmd))
    with pytest.raises(EngineStartError, match="code 3") as info:
        await engine.start()
    assert "no module named torch" in str(info.value)


async def test_missing_program(tmp_path: Path):
    engine = LocalEngine(launch(tmp_path, [str(tmp_path / "nope")]))
    with pytest.raises(EngineStartError, match="Could not start"):
        await engine.start()


async def test_crash_restarts_with_the_same_data_dir(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("app.engine_process.RESTART_DELAYS_S", (0.05,))
    cmd = script(
        tmp_path,
        """
        import sys, time
        from pathlib import Path
        data = Path(sys.argv[sys.argv.index("--data-dir") + 1])
        runs = data / "runs"
        n = int(runs.read_text()) + 1 if runs.exists() else 1
        runs.write_text(str(n))
        print(f"SFUMATO_ENGINE_READY http://127.0.0.1:{7000 + n}", flush=True)
        if n == 1:
            time.sleep(0.3)
            sys.exit(9)  # crash after being ready
        time.sleep(60)
    """,
    )
    engine = LocalEngine(launch(tmp_path, cmd))
    urls: list[str] = []
    crashes: list[tuple[int, str]] = []
    engine.ready.connect(urls.append)
    engine.crashed.connect(lambda code, tail: crashes.append((code, tail)))
    try:
        assert await engine.start() == "http://127.0.0.1:7001"
        for _ in range(500):
            if len(urls) == 2:
                break
            await asyncio.sleep(0.05)
        assert urls == ["http://127.0.0.1:7001", "http://127.0.0.1:7002"]
        assert crashes and crashes[0][0] == 9
        assert engine.starts == 2 and engine.url == "http://127.0.0.1:7002"
    finally:
        await engine.stop()


async def test_gives_up_after_repeated_crashes(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("app.engine_process.RESTART_DELAYS_S", (0.01,))
    monkeypatch.setattr("app.engine_process.MAX_CRASHES", 2)
    cmd = script(
        tmp_path,
        """
        import sys
        print("SFUMATO_ENGINE_READY http://127.0.0.1:1", flush=True)
        sys.exit(1)
    """,
    )
    engine = LocalEngine(launch(tmp_path, cmd))
    gave_up: list[str] = []
    engine.gave_up.connect(gave_up.append)
    try:
        await engine.start()
        for _ in range(600):
            if gave_up:
                break
            await asyncio.sleep(0.05)
        assert gave_up and "not restarting" in gave_up[0]
    finally:
        await engine.stop()
