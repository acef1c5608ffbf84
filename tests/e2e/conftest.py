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


def fill_sample_clip_edit(panel, window: int) -> None:
    """The Video panel set for a small LOVECon edit of the sample clip (white background →
    blue): frames 0–8 every 2nd (4 frames at 4 fps), 3 steps, CFG 7.5, ``window`` new frames
    per window; small enough for CI's two cores."""
    from engine.video.sample_clip import sample_caption

    src = sample_caption()  # "t-rex, twemoji style, on a white background"
    panel.start_spin.setValue(0)
    panel.end_spin.setValue(8)
    panel.stride_spin.setValue(2)
    panel.source_prompt_edit.setText(src)
    panel.target_prompt_edit.setPlainText(src.replace("white", "blue"))
    panel.edit_phrase_edit.setText("t-rex")
    panel.edit_type_combo.setCurrentIndex(panel.edit_type_combo.findData("background"))
    panel.steps_spin.setValue(3)
    panel.cfg_spin.setValue(7.5)
    panel.window_spin.setValue(window)


async def _open_studio(qtbot, args: list[str]):
    """Open the window with ``args`` and its own local engine; returns it once ready."""
    controller, window = create_window(parse_args(args))
    qtbot.addWidget(window)
    window.show()
    await controller.start()
    await until(
        lambda: controller.engine.connection in (Connection.ready, Connection.busy),
        what="the engine to be ready",
    )
    return window


@pytest.fixture
async def studio(qtbot, tmp_path: Path, tiny_models_dir: Path):
    """The app window with its own local engine, as a user starts it."""
    window = await _open_studio(
        qtbot,
        [
            "--data-dir",
            str(tmp_path / "data"),
            "--models-dir",
            str(tiny_models_dir),
            "--model",
            "tiny-sd",
        ],
    )
    yield window
    await window.controller.shutdown()


@pytest.fixture
async def builtin_studio(qtbot, tmp_path: Path):
    """The window on the embedded default model, as on a fresh machine."""
    window = await _open_studio(qtbot, ["--data-dir", str(tmp_path / "data")])
    yield window
    await window.controller.shutdown()
