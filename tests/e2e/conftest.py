"""End-to-end: the real window, the real engine process, the tiny random SD model.

Async tests run on qasync (Qt signals and asyncio on one loop), like the app itself.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from app.main import create_window, parse_args
from app.state.engine import Connection


def _qasync_loop():
    import qasync
    from PySide6.QtWidgets import QApplication

    return qasync.QEventLoop(QApplication.instance() or QApplication([]))


def pytest_asyncio_loop_factories(config, item):
    return {"qasync": _qasync_loop}


async def until(predicate, timeout: float = 120, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _open_studio(qtbot, args: list[str]):
    """Open the window with ``args`` and its own local engine; returns it once ready."""
    controller, window = create_window(parse_args(args))
    qtbot.addWidget(window)
    window.show()
    await controller.start()
    await until(lambda: controller.engine.connection in (Connection.ready, Connection.busy),
                what="the engine to be ready")
    return window


@pytest.fixture
async def studio(qtbot, tmp_path: Path, tiny_models_dir: Path):
    """The app window with its own local engine, as a user starts it."""
    window = await _open_studio(qtbot, ["--data-dir", str(tmp_path / "data"),
                                        "--models-dir", str(tiny_models_dir),
                                        "--model", "tiny-sd"])
    yield window
    await window.controller.shutdown()


@pytest.fixture
async def builtin_studio(qtbot, tmp_path: Path):
    """The window on the embedded default model, as on a fresh machine."""
    window = await _open_studio(qtbot, ["--data-dir", str(tmp_path / "data")])
    yield window
    await window.controller.shutdown()
