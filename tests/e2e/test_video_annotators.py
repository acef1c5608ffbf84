"""HED control maps in the Video panel (issue 7): choosing HED asks for the annotator folder, a
folder without the weights is refused in the panel in the engine's words, and the right folder
draws the strip — with the real window and engine on the built-in model."""

from __future__ import annotations

import pytest

from engine.video.sample_clip import write_sample_clip
from tests.e2e.conftest import until
from tests.support.annotators import write_annotator_folder

pytestmark = pytest.mark.slow


async def test_hed_strip_and_missing_weights(builtin_studio, qtbot, tmp_path):
    window = builtin_studio
    c = window.controller
    v, panel = c.video, window.video_panel
    await until(lambda: c.engine.active_model is not None, 120, "the built-in model")
    window.open_video(write_sample_clip(tmp_path / "sample.mp4", frames=8))
    await until(lambda: v.preview is not None, 60, "the canny preview")
    canny = list(v.preview.maps)

    panel.control_combo.setCurrentIndex(panel.control_combo.findData("hed"))
    assert panel.annotator_edit.isVisibleTo(panel)
    # asked for before anything is sent
    await until(lambda: "annotator" in panel.message_label.text(), 10, "the folder asked for")

    empty = tmp_path / "no-weights"
    empty.mkdir()
    panel.annotator_edit.setText(str(empty))
    await until(lambda: v.message[0] == "error", 60, "the refusal")
    assert "ControlNetHED.pth is not in" in v.message[1] and str(empty) in v.message[1]
    assert "ControlNetHED.pth" in panel.message_label.text()

    folder = write_annotator_folder(tmp_path / "annotators", kinds=("hed",))
    panel.annotator_edit.setText(str(folder))
    await until(
        lambda: v.preview is not None and v.preview.maps != canny and v.message[0] == "",
        120,
        "the HED strip",
    )
    shown = [w for w in panel.strip_views if w.isVisibleTo(panel)]
    assert len(shown) == 8 and all(w.has_frame() for w in shown)
    assert (await c.client.health()).version
