"""Issue 14 item 1: a scripted session through every panel leaves Python's ``None`` alive.

PySide6 6.12.0 on CPython 3.11 dropped a reference to ``None`` on every Qt call returning None;
minutes of use took its count to zero and CPython aborted ("none_dealloc"). This test drives the
real window on the real engine — every dock shown, a batch generated with previews, an
Analytic-DPM fit, a sampler grid, a video clip previewed, scrubbed and played — and checks
``sys.getrefcount(None)`` all along: a leaking binding loses thousands of references in such a
session; a sound one stays within a few hundred of where it started (objects holding None come
and go). On Python ≥ 3.12 ``None`` is immortal and its count never moves.

On PySide6 6.12.0 + Python 3.11 this test fails at its first checkpoint (see docs/performance.md,
"Refcount of None").
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget

from engine.video.sample_clip import write_sample_clip

pytestmark = pytest.mark.slow

#: A fall beyond this fails. A leaking binding loses one per Qt call returning None: a
#: generation alone makes thousands of those.
MAX_LOSS = 500


class NoneWatch:
    """``sys.getrefcount(None)`` against its value at the start; fails on a fall."""

    def __init__(self) -> None:
        gc.collect()
        self.start = sys.getrefcount(None)
        self.lowest = 0
        self.log: list[tuple[str, int]] = []

    def drift(self) -> int:
        d = sys.getrefcount(None) - self.start
        self.lowest = min(self.lowest, d)
        return d

    def check(self, where: str, collect: bool = True) -> None:
        if collect:
            gc.collect()
        d = self.drift()
        self.log.append((where, d))
        assert self.lowest > -MAX_LOSS, (
            f"None lost {-self.lowest} references by '{where}' (start {self.start}): the Qt "
            f"binding drops references to None and CPython will abort. Checkpoints: {self.log}"
        )


async def until(watch: NoneWatch, predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        watch.check(f"waiting for {what}", collect=False)
        await asyncio.sleep(0.05)


@pytest.mark.timeout(900)
async def test_a_scripted_session_through_every_panel_keeps_none_alive(
    builtin_studio, qtbot, tmp_path
):
    window = builtin_studio
    c = window.controller
    g = c.generation
    await until(
        NoneWatch(),
        lambda: len(c.engine.samplers) > 0 and c.engine.active_model,
        120,
        "the built-in model",
    )
    watch = NoneWatch()

    # Every panel in turn, as a person looks around.
    for dock in window.findChildren(QDockWidget):
        dock.show()
        dock.raise_()
        await asyncio.sleep(0.1)
    watch.check("showing every panel")

    # A batch of two, with previews.
    g.prompt, g.seed, g.steps, g.sampler = (
        "rocket, twemoji style, on a blue background",
        7,
        12,
        "Euler a",
    )
    g.batch_size = 2
    qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    await until(
        watch,
        lambda: len(c.canvas.images) == 2 and all(im.ready for im in c.canvas.images),
        240,
        "the batch",
    )
    for i in range(2):
        c.canvas.select(i)
        await asyncio.sleep(0.05)
    watch.check("generate")

    # An Analytic-DPM fit from the Sampler panel: its progress in the panel and the Queue for
    # half a minute (where the window used to die), then cancelled (test_fit_now.py runs one
    # to the end).
    g.batch_size, g.steps, g.sampler = 1, 10, "DDIM"
    window.sampler_dock.raise_()
    window.sampler_panel.analytic_toggle.click()
    c.fit_jobs.fit_now("analytic")
    await until(
        watch,
        lambda: (j := c.jobs.active_fit("analytic")) is not None and j.step > 0,
        120,
        "the analytic fit to run",
    )
    fit_id = c.jobs.active_fit("analytic").id
    deadline = time.monotonic() + 30
    await until(
        watch,
        lambda: time.monotonic() > deadline or c.jobs.get(fit_id).state.finished,
        60,
        "half a minute of the fit",
    )
    c.queue.cancel(fit_id)
    await until(watch, lambda: c.jobs.get(fit_id).state.finished, 60, "the fit to stop")
    watch.check("analytic fit")

    # A sampler grid: 2 samplers × 2 step counts.
    g.sampler = "Euler"
    window.sampler_panel.analytic_toggle.click()  # off again: the grid needs no fit
    qtbot.mouseClick(window.sampler_panel.compare_button, Qt.MouseButton.LeftButton)
    dialog = window.compare_dialog
    dialog.set_samplers(["Euler", "DDIM"])
    dialog.steps_edit.setText("2, 3")
    qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
    await until(
        watch, lambda: c.canvas.grid is not None and c.canvas.grid.complete, 300, "the grid"
    )
    watch.check("sampler grid")

    # A video: open, preview, scrub, play.
    clip = write_sample_clip(tmp_path / "sample.mp4")
    window.open_video(clip)
    v, panel = c.video, window.video_panel
    await until(
        watch,
        lambda: v.preview is not None and len(v.preview.frames) > 1,
        120,
        "the clip's preview",
    )
    for position in range(len(v.preview.frames)):
        panel.frame_slider.setValue(position)
        await asyncio.sleep(0.01)
    panel.play_button.click()
    await until(watch, lambda: v.position >= 5, 20, "playback")
    await asyncio.sleep(1.0)
    panel.play_button.click()
    watch.check("video preview and playback")
    print(f"None refcount start {watch.start}, checkpoints {watch.log}")
