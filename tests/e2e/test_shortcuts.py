"""Standard shortcuts against the real engine: Esc cancels the running job, Ctrl+S's saving
half writes the PNG with its recipe; About names the engine's torch and diffusers."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import Qt

from engine.protocol import JobState, recipe_from_png_text
from tests.e2e.conftest import until

pytestmark = pytest.mark.slow


async def test_escape_cancels_the_running_job_and_ctrl_s_saves(studio, qtbot, tmp_path: Path):
    window = studio
    c = window.controller
    g = c.generation
    g.set_size(64, 64)
    g.seed = 7
    g.steps = 400
    window.prompt_edit.setPlainText("a long one")
    window.generate_button.click()
    try:
        await until(lambda: (r := c.jobs.running) is not None and r.step >= 2, 120, "job running")
    except TimeoutError as exc:  # seen twice under load 6-7 (2026-12-06), not reproduced since
        jobs = [(j.id, j.state.value, j.step, j.total) for j in c.jobs.ordered()]
        raise AssertionError(
            f"{exc}; the app's jobs: {jobs}; connection: {c.engine.connection}, {c.engine.detail!r}"
        ) from exc
    job_id = c.jobs.running.id
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    await until(lambda: c.jobs.get(job_id).state is JobState.cancelled, 60, "cancelled")

    g.steps = 4
    window.prompt_edit.setPlainText("a short one")
    waiting = window.canvas.wait_for_image(120)
    window.generate_button.click()
    await waiting
    saved = window.desktop.save_image_to(tmp_path / "mine")
    assert saved == tmp_path / "mine.png"
    assert recipe_from_png_text(Image.open(saved).text).prompt == "a short one"

    h = c.engine.health
    assert h is not None and h.torch and h.diffusers and h.python
    assert h.gpu == "" if h.device == "cpu" else h.gpu
    box = window.desktop.show_about()
    assert f"torch {h.torch}" in box.text() and f"diffusers {h.diffusers}" in box.text()
    box.close()
