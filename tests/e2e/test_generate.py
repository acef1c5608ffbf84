"""A person's first generation, and an engine crash in the middle of one."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import Qt

from app.state.engine import Connection
from engine.protocol import JobState, recipe_from_png_text
from tests.e2e.conftest import until

pytestmark = pytest.mark.slow


def set_up_small_job(window, steps: int) -> None:
    g = window.controller.generation
    g.set_size(64, 64)
    g.steps = steps
    g.seed = 4242


async def test_type_prompt_click_generate_get_saved_png(studio, qtbot):
    window = studio
    set_up_small_job(window, steps=8)
    window.prompt_edit.setFocus()
    qtbot.keyClicks(window.prompt_edit, "a lighthouse at dusk")
    waiting = window.canvas.wait_for_image(120)
    qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    shown = Path(await waiting)

    assert shown.is_file() and window.canvas.view.has_image
    image = Image.open(shown)
    assert image.size == (64, 64)
    recipe = recipe_from_png_text(image.text)
    assert recipe.prompt == "a lighthouse at dusk"
    assert recipe.seed == 4242 and recipe.steps == 8 and recipe.model == "tiny-sd"
    assert "Steps: 8" in image.text["parameters"]
    # indexed in the history, newest first
    await until(lambda: len(window.controller.history.index.entries()) >= 1, 10, "history")
    entry = window.controller.history.index.entries()[0]
    assert Path(entry.path) == shown


async def test_engine_killed_mid_job_restarts_and_finishes_the_queue(studio, qtbot):
    window = studio
    controller = window.controller
    set_up_small_job(window, steps=150)
    window.prompt_edit.setPlainText("a slow one")
    window.generate_button.click()
    set_up_small_job(window, steps=4)
    window.prompt_edit.setPlainText("a queued one")
    window.generate_button.click()

    await until(lambda: len(controller.jobs) == 2, 30, "both jobs queued")
    await until(
        lambda: (r := controller.jobs.running) is not None and r.step >= 3,
        120,
        "the first job to be sampling",
    )
    running_id = controller.jobs.running.id
    old_pid = controller.local.pid
    os.kill(old_pid, signal.SIGKILL)

    await until(
        lambda: controller.engine.connection == Connection.restarting,
        30,
        "the app to notice the crash",
    )
    await until(lambda: controller.local.pid not in (None, old_pid), 60, "a new engine")
    await until(
        lambda: all(j.state == JobState.done for j in controller.jobs.ordered()),
        240,
        "both jobs to finish after the restart",
    )
    done = {j.id: j for j in controller.jobs.ordered()}
    assert done[running_id].results, "the interrupted job produced its image"
    for job in done.values():
        for result in job.results:
            assert Path(result.path).is_file()
    assert controller.engine.connection in (Connection.ready, Connection.busy)
