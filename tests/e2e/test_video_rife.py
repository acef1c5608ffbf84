"""RIFE smoothing from the window on the built-in model: choose RIFE in the Video panel, pick
its weights file (Practical-RIFE's release format; random weights, the real ones are not
available offline), edit the sample clip with LOVECon. A path the engine does not have and a
file of another layout are refused in the panel in the engine's words."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from engine.video.io import probe
from engine.video.sample_clip import write_sample_clip
from tests.e2e.conftest import fill_sample_clip_edit, until
from tests.support.rife import write_rife_release

pytestmark = pytest.mark.slow


async def _submit(window, qtbot) -> None:
    v, panel = window.controller.video, window.video_panel
    before = v.job_id
    v.message = ("", "")
    qtbot.mouseClick(panel.edit_button, Qt.MouseButton.LeftButton)
    await until(
        lambda: v.job_id not in ("", before) or v.message[0] == "error",
        30,
        "the edit to be queued or refused",
    )
    if v.job_id not in ("", before):
        await until(lambda: v.job_state in ("done", "failed", "cancelled"), 600, "the edit")


async def test_lovecon_with_rife_from_the_panel(builtin_studio, qtbot, tmp_path, monkeypatch):
    window = builtin_studio
    c = window.controller
    v, panel = c.video, window.video_panel
    await until(lambda: c.engine.active_model is not None, 120, "the built-in model")
    window.open_video(write_sample_clip(tmp_path / "sample.mp4"))
    await until(lambda: v.source is not None and v.preview is not None, 60, "the clip")
    fill_sample_clip_edit(panel, window=4)
    panel.interp_combo.setCurrentIndex(panel.interp_combo.findData("rife"))
    assert panel.rife_edit.isVisibleTo(panel)

    # a path the engine does not have: refused at submit, the engine's words in the panel
    panel.rife_edit.setText(str(tmp_path / "nowhere" / "flownet.pkl"))
    await _submit(window, qtbot)
    assert v.message[0] == "error" and "does not exist" in v.message[1]
    assert "does not exist" in panel.message_label.text()

    # another layout: the job fails before denoising and says what differs
    bad = write_rife_release(
        tmp_path / "bad" / "flownet.pkl", edit=lambda sd: sd.pop("module.block1.convblock.0.beta")
    )
    panel.rife_edit.setText(str(bad))
    await _submit(window, qtbot)
    assert v.job_state == "failed" and "not a RIFE 4.6 flownet" in v.message[1]
    assert "block1.convblock.0.beta" in panel.message_label.text()

    # the release's file, picked with the file chooser
    good = write_rife_release(tmp_path / "rife46" / "flownet.pkl")
    monkeypatch.setattr(
        QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(good), ""))
    )
    panel.rife_browse.click()
    assert v.rife_weights == str(good) and panel.rife_edit.text() == str(good)
    await _submit(window, qtbot)
    assert v.job_state == "done", v.message
    await until(lambda: v.result_frames is not None, 60, "the result's frames")
    p = probe(v.result_path)
    assert (p.frames, p.fps, p.width, p.height) == (4, 4.0, 64, 64)
    assert panel.result_view.has_frame() and "smoothing" in panel.result_times_label.text()

    if shots := os.environ.get("SFUMATO_SHOTS"):  # docs: xvfb-run … SFUMATO_SHOTS=docs pytest
        from PySide6.QtWidgets import QApplication

        from app.ui.theme import apply_theme

        apply_theme(QApplication.instance())
        panel.rife_edit.setText("~/models/rife-4.6/train_log/flownet.pkl")  # as a user has it
        window.resizeDocks([window.video_dock], [720], Qt.Orientation.Horizontal)
        await asyncio.sleep(0.5)
        # the settings from the control strip down to the RIFE weights, no row cut in half
        inner = panel.scroll.widget()
        start = panel.strip.geometry().top() - 3  # below the ControlNet field's border
        end = panel.rife_edit.mapTo(inner, panel.rife_edit.rect().bottomLeft()).y() + 12
        grow = (end - start) - panel.scroll.viewport().height()
        player, settings = panel.splitter.sizes()
        panel.splitter.setSizes([player - grow, settings + grow])
        await asyncio.sleep(0.3)
        panel.scroll.verticalScrollBar().setValue(start)
        await asyncio.sleep(0.2)
        window.grab().save(str(Path(shots) / "video-panel-rife.png"))
