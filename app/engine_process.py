"""Starting, watching and restarting the local engine process.

The engine is ``python -m engine.cli --host 127.0.0.1 --port 0 --exit-with-stdin …`` with a
per-launch token in ``SFUMATO_ENGINE_TOKEN`` (never on its command line, which every local user
can read); its stdin is a pipe only we hold, so it exits when we die, even by SIGKILL. It
prints ``SFUMATO_ENGINE_READY http://127.0.0.1:<port>`` once it listens; we read that from its
stdout without blocking (QProcess signals on the Qt loop). If it dies on its own, it is
restarted with the same data directory, so the engine's queue resumes.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import secrets
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal

from .logs import ENGINE_LOG, engine_console_logger

log = logging.getLogger(__name__)

READY_PREFIX = "SFUMATO_ENGINE_READY "
TOKEN_ENV = "SFUMATO_ENGINE_TOKEN"
#: The engine's stdout/stderr, in the app's log folder (rotated; see app.logs).
CONSOLE_LOG = ENGINE_LOG
#: Seconds between a crash and the next start, growing with repeated crashes.
RESTART_DELAYS_S = (0.5, 2.0, 5.0, 10.0)
#: More crashes than this within CRASH_WINDOW_S and we stop trying.
MAX_CRASHES = 5
CRASH_WINDOW_S = 120.0


class EngineStartError(RuntimeError):
    """The engine exited or stayed silent before saying it was ready; message has its last output."""


@dataclass
class EngineLaunch:
    """How to start the local engine. ``command`` replaces ``python -m engine.cli`` for tests."""

    data_dir: Path
    output_dir: Path
    model: str | None = None
    models_dirs: list[Path] = field(default_factory=list)
    extra_args: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "engine.cli"])
    startup_timeout_s: float = 180.0
    cwd: Path | None = None
    #: Folder of ``engine-console.log`` (rotated); None = ``data_dir``.
    log_dir: Path | None = None

    def argv(self) -> list[str]:
        """The full command line (program first)."""
        # --exit-with-stdin: the engine exits when the pipe to its stdin, which only this
        # process holds, closes, so it never outlives the app, however the app dies.
        args = [*self.command, "--host", "127.0.0.1", "--port", "0", "--exit-with-stdin"]
        args += ["--data-dir", str(self.data_dir), "--output-dir", str(self.output_dir)]
        if self.model:
            args += ["--model", self.model]
        for folder in self.models_dirs:
            args += ["--models-dir", str(folder)]
        return args + list(self.extra_args)

    @staticmethod
    def command_from_env() -> list[str]:
        """``SFUMATO_ENGINE_CMD`` (shell words) if set, else ``python -m engine.cli``."""
        cmd = os.environ.get("SFUMATO_ENGINE_CMD", "").strip()
        return shlex.split(cmd) if cmd else [sys.executable, "-m", "engine.cli"]

    @staticmethod
    def args_from_env() -> list[str]:
        """Extra engine arguments from ``SFUMATO_ENGINE_ARGS`` (shell words)."""
        return shlex.split(os.environ.get("SFUMATO_ENGINE_ARGS", ""))


class LocalEngine(QObject):
    """Owns the engine process: start → ready(url), watch, restart after crashes, stop."""

    #: The engine listens at this URL (after every start and restart).
    ready = Signal(str)
    #: It died on its own: (exit code, last lines of output). A restart follows unless gave_up.
    crashed = Signal(int, str)
    #: Too many crashes in a row; no more restarts: (message).
    gave_up = Signal(str)
    #: A new process is being started (the first one or a restart): (attempt number).
    starting = Signal(int)
    #: One line of engine output (stdout or stderr), for the log view.
    output = Signal(str)

    def __init__(self, launch: EngineLaunch, parent: QObject | None = None):
        super().__init__(parent)
        self.launch = launch
        self.token = secrets.token_urlsafe(32)
        self.url = ""
        self._proc: QProcess | None = None
        self._ready_future: asyncio.Future[str] | None = None
        self._stopping = False
        self._crash_times: collections.deque[float] = collections.deque(maxlen=MAX_CRASHES + 1)
        self._tail: collections.deque[str] = collections.deque(maxlen=40)
        self._buffers: dict[str, bytes] = {"out": b"", "err": b""}
        self._log_file = None
        self._restart_task: asyncio.Task[None] | None = None
        self.starts = 0

    # ----------------------------------------------------------------- public
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.state() != QProcess.ProcessState.NotRunning

    @property
    def pid(self) -> int | None:
        return int(self._proc.processId()) if self.running and self._proc else None

    def last_output(self) -> str:
        return "\n".join(self._tail)

    async def start(self) -> str:
        """Start the process and wait until it prints its URL; raises EngineStartError."""
        self._stopping = False
        if self._restart_task is not None and not self._restart_task.done():
            self._restart_task.cancel()
        self._spawn()
        assert self._ready_future is not None
        try:
            return await asyncio.wait_for(
                asyncio.shield(self._ready_future), self.launch.startup_timeout_s
            )
        except TimeoutError:
            self.kill()
            raise EngineStartError(
                f"The engine did not start within {self.launch.startup_timeout_s:.0f} s.\n"
                + self.last_output()
            ) from None

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the engine to exit (SIGTERM), kill it if it takes longer than ``timeout_s``."""
        self._stopping = True
        if self._restart_task is not None:
            self._restart_task.cancel()
        proc = self._proc
        if proc is None or proc.state() == QProcess.ProcessState.NotRunning:
            return
        done = asyncio.get_running_loop().create_future()
        proc.finished.connect(lambda *_: done.done() or done.set_result(None))
        proc.terminate()
        try:
            await asyncio.wait_for(done, timeout_s)
        except TimeoutError:
            proc.kill()
            proc.waitForFinished(1000)

    def kill(self) -> None:
        """Stop the process now, without a restart (used at exit and after a start timeout)."""
        self._stopping = True
        if self._proc is not None and self._proc.state() != QProcess.ProcessState.NotRunning:
            self._proc.terminate()
            if not self._proc.waitForFinished(3000):
                self._proc.kill()
                self._proc.waitForFinished(1000)

    # ----------------------------------------------------------------- process plumbing
    def _spawn(self) -> None:
        self.launch.data_dir.mkdir(parents=True, exist_ok=True)
        self.launch.output_dir.mkdir(parents=True, exist_ok=True)
        self._open_log()
        self.starts += 1
        self.url = ""
        self._buffers = {"out": b"", "err": b""}
        loop = asyncio.get_event_loop()
        self._ready_future = loop.create_future()

        proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert(TOKEN_ENV, self.token)
        env.insert("PYTHONUNBUFFERED", "1")
        # So the engine can exit if the app dies without stopping it (see engine/cli.py).
        env.insert("SFUMATO_PARENT_PID", str(os.getpid()))
        # Idle OpenMP threads sleep instead of spinning: on a busy CPU-only machine spinning
        # threads starved each other (tiny model 0.07 → 2 s/step) and the window with them.
        if not env.contains("OMP_WAIT_POLICY"):
            env.insert("OMP_WAIT_POLICY", "PASSIVE")
        # The engine never needs a display; keep Qt plugins of the app out of its way.
        env.remove("QT_QPA_PLATFORM")
        proc.setProcessEnvironment(env)
        if self.launch.cwd is not None:
            proc.setWorkingDirectory(str(self.launch.cwd))
        proc.readyReadStandardOutput.connect(lambda: self._read(proc, "out"))
        proc.readyReadStandardError.connect(lambda: self._read(proc, "err"))
        proc.finished.connect(lambda code, status: self._on_finished(proc, code, status))
        proc.errorOccurred.connect(lambda err: self._on_error(proc, err))
        argv = self.launch.argv()
        log.info("starting engine: %s", shlex.join(argv))
        self._write_log(f"--- start #{self.starts}: {shlex.join(argv)}")
        self._proc = proc
        self.starting.emit(self.starts)
        proc.started.connect(lambda: self._lower_priority(proc))
        proc.start(argv[0], argv[1:])

    def _lower_priority(self, proc: QProcess) -> None:
        """Renice the engine a little so that the window stays responsive while it computes.

        On a CPU-only machine the engine's torch threads take every core; the GUI then only
        stutters if it competes at equal priority. ``SFUMATO_ENGINE_NICE=0`` turns this off.
        """
        nice = int(os.environ.get("SFUMATO_ENGINE_NICE", "5") or 0)
        if nice <= 0 or not hasattr(os, "setpriority"):
            return
        try:
            os.setpriority(os.PRIO_PROCESS, int(proc.processId()), nice)
        except OSError as exc:
            log.debug("could not renice the engine: %s", exc)

    def _read(self, proc: QProcess, channel: str) -> None:
        raw = bytes(
            (
                proc.readAllStandardOutput() if channel == "out" else proc.readAllStandardError()
            ).data()
        )
        data = self._buffers[channel] + raw
        *lines, rest = data.split(b"\n")
        self._buffers[channel] = rest
        for line_bytes in lines:
            line = line_bytes.decode("utf-8", "replace").rstrip("\r")
            self._line(line)

    def _line(self, line: str) -> None:
        self._tail.append(line)
        self._write_log(line)
        self.output.emit(line)
        if line.startswith(READY_PREFIX):
            self.url = line[len(READY_PREFIX) :].strip()
            if self._ready_future is not None and not self._ready_future.done():
                self._ready_future.set_result(self.url)
            self.ready.emit(self.url)

    def _on_error(self, proc: QProcess, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and proc is self._proc:
            msg = f"Could not start the engine ({self.launch.command[0]}): {proc.errorString()}"
            self._tail.append(msg)
            if self._ready_future is not None and not self._ready_future.done():
                self._ready_future.set_exception(EngineStartError(msg))

    def _on_finished(self, proc: QProcess, code: int, status: QProcess.ExitStatus) -> None:
        if proc is not self._proc:
            return
        for channel in ("out", "err"):
            if self._buffers[channel]:
                self._line(self._buffers[channel].decode("utf-8", "replace"))
                self._buffers[channel] = b""
        crashed = status == QProcess.ExitStatus.CrashExit
        code = -1 if crashed else int(code)
        self._write_log(f"--- engine exited with code {code}")
        proc.deleteLater()
        self._proc = None
        if self._ready_future is not None and not self._ready_future.done():
            self._ready_future.set_exception(
                EngineStartError(
                    f"The engine exited (code {code}) before it was ready.\n" + self.last_output()
                )
            )
            # A start that fails is not restarted in a loop; start() reports it.
            return
        if self._stopping:
            return
        self.crashed.emit(code, self.last_output())
        self._schedule_restart()

    def _schedule_restart(self) -> None:
        now = time.monotonic()
        self._crash_times.append(now)
        recent = [t for t in self._crash_times if now - t < CRASH_WINDOW_S]
        if len(recent) > MAX_CRASHES:
            self.gave_up.emit(
                f"The engine crashed {len(recent)} times in {CRASH_WINDOW_S:.0f} s; not restarting. "
                f"See {CONSOLE_LOG} (Help → Open log folder), "
                "then use Engine → Restart engine."
            )
            return
        delay = RESTART_DELAYS_S[min(len(recent) - 1, len(RESTART_DELAYS_S) - 1)]
        self._restart_task = asyncio.ensure_future(self._restart_after(delay))

    async def _restart_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._stopping:
            return
        try:
            await self.start()
        except EngineStartError as exc:
            log.warning("engine restart failed: %s", exc)
            if not self._stopping:
                self._schedule_restart()

    # ----------------------------------------------------------------- log file
    def _open_log(self) -> None:
        if self._log_file is None:
            self._log_file = engine_console_logger(self.launch.log_dir or self.launch.data_dir)

    def _write_log(self, line: str) -> None:
        if self._log_file is not None:
            self._log_file.info(line)
