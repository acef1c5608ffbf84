"""The Video dock's widgets over its state, in the real window (no engine)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from app.state.video import METHODS, VideoFrames

from .test_video_state import upload


@pytest.fixture
def window(qtbot, tmp_path):
    from app.main import create_window, parse_args

    controller, win = create_window(parse_args(["--data-dir", str(tmp_path / "d"), "--no-engine"]))
    qtbot.addWidget(win)
    win.show()
    yield win
    controller.history.index.close()


def png(value: int, size=(16, 16)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (value, value, value)).save(buf, "PNG")
    return buf.getvalue()


def frames(n: int, start: int = 0) -> VideoFrames:
    return VideoFrames(
        indices=list(range(start, start + n)),
        frames=[png(10 * i) for i in range(n)],
        maps=[png(255 - 10 * i) for i in range(n)],
    )


def test_dock_is_tabbed_with_the_others_and_in_the_view_menu(window):
    assert window.video_dock.widget() is window.video_panel
    tabs = window.tabifiedDockWidgets(window.prompt_dock)
    assert window.video_dock in tabs
    assert "Video" in [a.text() for a in window.view_menu.actions()]


def test_method_choice_explains_itself_and_shows_its_options(window):
    panel, s = window.video_panel, window.controller.video
    panel.method_combo.setCurrentIndex(panel.method_combo.findData("controlvideo"))
    assert s.method == "controlvideo"
    assert panel.method_hint.text() == METHODS["controlvideo"][1]
    assert panel.tuning_spin.isVisibleTo(panel)
    assert not panel.window_spin.isVisibleTo(panel)
    assert not panel.interp_combo.isVisibleTo(panel)
    assert not panel.edit_phrase_edit.isEnabled()
    s.method = "lovecon"
    assert panel.method_combo.currentData() == "lovecon"
    assert panel.window_spin.isVisibleTo(panel) and panel.edit_phrase_edit.isEnabled()
    assert not panel.tuning_spin.isVisibleTo(panel)
    panel.control_combo.setCurrentIndex(panel.control_combo.findData("depth"))
    assert s.control_type == "depth" and not panel.low_spin.isEnabled()
    assert panel.annotator_edit.isVisibleTo(panel)


def test_target_label_sits_on_the_fields_first_line(window, qtbot):
    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QLabel

    window.video_dock.raise_()
    panel = window.video_panel
    edit = panel.target_prompt_edit
    (lbl,) = [w for w in panel.findChildren(QLabel) if w.buddy() is edit]
    qtbot.waitUntil(lambda: lbl.isVisible() and edit.isVisible())
    text_top = lbl.mapTo(panel, lbl.contentsRect().topLeft()).y()
    first_line = edit.viewport().mapTo(panel, QPoint(0, edit.cursorRect().top())).y()
    assert abs(text_top - first_line) <= 1, (text_top, first_line)
    assert lbl.contentsRect().height() == edit.cursorRect().height()  # one line, same font


def test_source_player_strip_and_shared_slider(window, qtbot):
    panel, s = window.video_panel, window.controller.video
    assert not panel.edit_button.isEnabled()  # nothing to edit yet
    s.set_source(upload(audio=True), "/here/clip.mp4")
    assert panel.drop_zone.title.text() == "clip.mp4"
    assert "24 frames · 8 fps · 64×64" in panel.drop_zone.detail.text()
    assert panel.edit_button.isEnabled()
    s.preview = frames(24)
    assert panel.source_view.has_frame() and not panel.result_view.has_frame()
    shown = [w for w in panel.strip_views if w.isVisibleTo(panel)]
    assert len(shown) == 8 and shown[-1].toolTip().endswith("#23")
    assert panel.frame_slider.maximum() == 23
    panel.frame_slider.setValue(5)
    assert s.position == 5 and panel.source_view._data is s.preview.frames[5]
    assert panel.frame_label.text() == "6 / 24 · #5"
    panel.end_here.click()
    panel.frame_slider.setValue(2)
    panel.start_here.click()
    assert (s.start, s.end) == (2, 6)
    # the result has fewer shown frames: the same moment in time is shown beside
    s.result_frames = frames(12)
    panel.frame_slider.setValue(23)
    assert panel.result_position() == 11
    assert panel.result_view._data is s.result_frames.frames[11]
    panel.play_button.click()
    assert s.playing and panel.timer.isActive() and panel.play_button.text() == "❚❚"
    qtbot.waitUntil(lambda: s.position != 23, timeout=2000)  # it advances, wrapping around
    panel.play_button.click()
    assert not s.playing and not panel.timer.isActive()


def test_strip_shows_the_maps_the_engine_drew(window):
    panel, s = window.video_panel, window.controller.video
    s.set_source(upload(), "/here/clip.mp4")
    full = frames(32)
    drawn = [0, 5, 9, 31]  # maps for only some frames (map_count): the others are empty
    s.preview = VideoFrames(
        indices=full.indices,
        frames=full.frames,
        maps=[m if i in drawn else b"" for i, m in enumerate(full.maps)],
    )
    shown = [w for w in panel.strip_views if w.isVisibleTo(panel)]
    assert len(shown) == 4 and all(w.has_frame() for w in shown)
    assert [w.toolTip() for w in shown] == [f"Control map of source frame #{i}" for i in drawn]
    assert "of 4 frames" in panel.strip_label.text()


def test_edit_with_problems_shows_them_and_sends_nothing(window):
    panel, s = window.video_panel, window.controller.video
    asked = []
    panel.edit_requested.connect(lambda: asked.append(1))
    s.set_source(upload(), "/here/clip.mp4")
    s.source_prompt = "a t-rex"
    s.edit_phrase = "giraffe"
    panel.edit_button.click()
    assert asked == []
    text = panel.message_label.text()
    assert "Say what the video should become" in text and "giraffe" in text
    assert panel.target_prompt_edit.property("error") == "true"
    assert panel.edit_phrase_edit.property("error") == "true"
    panel.target_prompt_edit.setPlainText("a t-rex in a hat")
    panel.edit_phrase_edit.setText("t-rex")
    assert panel.message_label.text() == ""
    assert panel.target_prompt_edit.property("error") == "false"
    panel.edit_button.click()
    assert asked == [1]


def test_rife_choice_asks_for_its_weights_file(window, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    panel, s = window.video_panel, window.controller.video
    asked = []
    panel.edit_requested.connect(lambda: asked.append(1))
    s.set_source(upload(), "/here/clip.mp4")
    s.source_prompt, s.target_prompt = "a t-rex", "a t-rex in a hat"
    s.edit_phrase = "t-rex"
    assert panel.interp_combo.isVisibleTo(panel) and panel.interp_combo.currentData() == "flow"
    assert not any(w.isVisibleTo(panel) for w in panel.rife_widgets)
    panel.interp_combo.setCurrentIndex(panel.interp_combo.findData("rife"))
    assert s.interpolator == "rife"
    assert panel.rife_edit.isVisibleTo(panel) and panel.rife_browse.isVisibleTo(panel)
    panel.edit_button.click()
    assert asked == []
    assert "choose its weights file" in panel.message_label.text()
    assert panel.rife_edit.property("error") == "true"
    monkeypatch.setattr(
        QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: ("/w/rife46/flownet.pkl", ""))
    )
    panel.rife_browse.click()  # the file chooser fills the field
    assert s.rife_weights == "/w/rife46/flownet.pkl"
    assert panel.rife_edit.text() == "/w/rife46/flownet.pkl"
    assert panel.rife_edit.property("error") == "false" and panel.message_label.text() == ""
    panel.edit_button.click()
    assert asked == [1]
    # smoothing off: the choice greys out and the weights row goes away
    panel.smoothing_check.setChecked(False)
    assert not panel.interp_combo.isEnabled() and not panel.rife_edit.isVisibleTo(panel)


def test_choosers_open_where_the_field_points(window, monkeypatch, tmp_path):
    from pathlib import Path

    from PySide6.QtWidgets import QFileDialog

    panel, s = window.video_panel, window.controller.video
    opened: list[str] = []  # the folder each chooser opened in; the user then cancels

    def open_file(_parent, _title, folder, _filter):
        opened.append(folder)
        return "", ""

    def open_folder(_parent, _title, folder):
        opened.append(folder)
        return ""

    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(open_file))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(open_folder))
    s.interpolator = "rife"
    for typed, folder in (
        ("~/models/rife-4.6/flownet.pkl", Path.home() / "models/rife-4.6"),
        (str(tmp_path), tmp_path),  # the release folder itself
        ("", ""),
    ):
        s.rife_weights = typed
        panel.rife_browse.click()
        assert opened[-1] == str(folder)
    assert s.rife_weights == ""  # cancelled: the field is left as it was
    s.control_type = "hed"
    s.annotator = "~/Annotators"
    panel.annotator_browse.click()
    assert opened[-1] == str(Path.home())  # not there: its parent
    s.annotator = str(tmp_path)
    panel.annotator_browse.click()
    assert opened[-1] == str(tmp_path) and s.annotator == str(tmp_path)


def test_progress_cancel_and_result(window, tmp_path):
    panel, s = window.video_panel, window.controller.video
    cancels = []
    panel.cancel_requested.connect(lambda: cancels.append(1))
    s.set_source(upload(), "/here/clip.mp4")
    assert not panel.cancel_button.isVisibleTo(panel)
    s.job_submitted("j1")
    s.progress("window 2 of 3", 20, 40, 65)
    assert panel.stage_label.text() == "Window 2 of 3 — step 20 of 40 — about 1:05 left"
    assert panel.progress_bar.value() == 500 and not panel.edit_button.isEnabled()
    assert panel.cancel_button.isVisibleTo(panel)
    panel.cancel_button.click()
    assert cancels == [1]
    mp4 = tmp_path / "j1-video.mp4"
    mp4.write_bytes(b"x")
    s.result_ready(
        mp4,
        {
            "frames": 4,
            "fps": 4.0,
            "width": 64,
            "height": 64,
            "method": "lovecon",
            "has_audio": True,
            "stages_s": {"inversion": 1.25},
        },
    )
    s.finished("done")
    assert not panel.cancel_button.isVisibleTo(panel) and panel.edit_button.isEnabled()
    assert "LOVECon · 4 frames · 64×64 · 4 fps · audio" in panel.result_label.text()
    times = panel.result_times_label
    assert times.text() == "inversion\N{NO-BREAK SPACE}1.2\N{NO-BREAK SPACE}s"
    # the seconds per stage get the panel's width, under Export, not the column beside it
    assert times.geometry().right() > panel.export_button.geometry().left()
    assert times.geometry().top() >= panel.export_button.geometry().bottom()
    assert panel.export_button.isVisibleTo(panel)
    saved = []
    panel.export_requested.connect(saved.append)
    out = window.controller.video_jobs.export(tmp_path / "mine.mp4")
    assert out is not None and out.read_bytes() == b"x"


def test_dropping_a_video_without_an_engine_says_so_in_the_panel(window, tmp_path):
    from .test_window import drop

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    drop(window, clip)
    assert window.video_dock.isVisible()
    panel = window.video_panel
    assert "not connected" in panel.message_label.text()
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    panel.drop_zone.file_dropped.emit(str(notes))
    assert "notes.txt is not a video" in panel.message_label.text()
    assert panel.message_label.objectName() == "FieldError"
    assert window.controller.video.source is None
    assert panel.open_button.isEnabled()


def test_non_canny_control_asks_for_the_annotator_folder(window, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    panel, s = window.video_panel, window.controller.video
    s.set_source(upload(), "/here/clip.mp4")
    s.source_prompt, s.target_prompt = "a t-rex", "a t-rex in a hat"
    s.edit_phrase = "t-rex"
    assert not any(w.isVisibleTo(panel) for w in panel.annotator_widgets)
    panel.control_combo.setCurrentIndex(panel.control_combo.findData("depth"))
    assert s.control_type == "depth"
    assert all(w.isVisibleTo(panel) for w in panel.annotator_widgets)
    assert "dpt_hybrid-midas-501f0c75.pt" in panel.annotator_edit.toolTip()
    panel.edit_button.click()
    assert "annotator weights" in panel.message_label.text()
    monkeypatch.setattr(
        QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: "/w/Annotators")
    )
    panel.annotator_browse.click()  # the folder chooser fills the field
    assert s.annotator == "/w/Annotators" and panel.annotator_edit.text() == "/w/Annotators"
    assert s.to_params().control.annotator == "/w/Annotators"
    panel.control_combo.setCurrentIndex(panel.control_combo.findData("canny"))
    assert not any(w.isVisibleTo(panel) for w in panel.annotator_widgets)


def test_edit_phrase_says_what_it_names_per_edit_type(window):
    """Object edits name the thing that changes, background edits the subject kept."""
    from app.state.video import EDIT_PHRASE_HINTS

    panel, s = window.video_panel, window.controller.video
    s.edit_type = "attribute"
    assert panel.edit_phrase_edit.placeholderText() == EDIT_PHRASE_HINTS["attribute"]
    assert "hat" in panel.edit_phrase_edit.placeholderText()
    s.edit_type = "background"
    assert "keep" in panel.edit_phrase_edit.placeholderText()
    assert "cows" in panel.edit_phrase_edit.placeholderText()
    tip = panel.edit_phrase_edit.toolTip()
    assert "Attribute edit" in tip and "Background edit" in tip
