"""The real window, offscreen, without an engine: bindings, errors, drops, docks, canvas."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent

from app.main import create_window, parse_args
from app.state.canvas import CanvasImage
from app.ui.queue_dock import JOB_MIME
from engine.protocol import JobQueued, QueueChanged

from .test_controller import make_job, png_bytes


@pytest.fixture
def window(qtbot, tmp_path: Path):
    controller, win = create_window(parse_args(["--data-dir", str(tmp_path / "d"), "--no-engine"]))
    qtbot.addWidget(win)
    win.show()
    yield win
    controller.history.index.close()


def drop(win, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(
        QPoint(300, 300).toPointF(),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    win.dropEvent(event)


def test_widgets_are_findable_and_bound(window):
    for name in (
        "prompt_edit",
        "generate_button",
        "canvas",
        "queue_view",
        "history_view",
        "model_combo",
    ):
        assert getattr(window, name).objectName() == name
    window.prompt_edit.setPlainText("a fox")
    assert window.controller.generation.prompt == "a fox"
    window.controller.generation.steps = 13
    assert window.prompt_panel.steps_spin.value() == 13
    window.prompt_panel.size_preset.setCurrentIndex(1)
    window.prompt_panel.size_preset.activated.emit(1)
    assert (window.controller.generation.width, window.controller.generation.height) == (64, 64)


def test_field_errors_show_next_to_the_field(window, qtbot):
    g = window.controller.generation
    g.set_errors({"width": "must be a multiple of 8 (try 64 or 72)"})
    panel = window.prompt_panel
    assert panel.field_has_error("width")
    assert panel.error_text("width") == "Width: must be a multiple of 8 (try 64 or 72)"
    g.width = 128  # editing clears it
    assert not panel.field_has_error("width") and panel.error_text("width") == ""


async def test_ctrl_enter_generates_even_while_busy(window, qtbot):
    c = window.controller
    c.generation.set_size(64, 64)
    window.prompt_edit.setFocus()
    qtbot.keyClick(window.prompt_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert len(c.generate_jobs.pending) == 1
    assert "\n" not in c.generation.prompt  # Ctrl+Enter is not a newline
    assert window.generate_button.isEnabled()
    window.generate_button.click()
    assert len(c.generate_jobs.pending) == 2


async def test_drop_png_restores_and_wrong_type_explains(window, a1111_png, tmp_path):
    c = window.controller
    c.generation.prompt = "unchanged"
    txt = tmp_path / "x.txt"
    txt.write_text("hi")
    drop(window, txt)
    assert c.generation.prompt == "unchanged"
    assert window.toast.isVisible() and "not an image" in window.toast.label.text()
    assert "not an image" in window.status.message.text()
    drop(window, a1111_png)
    assert window.prompt_edit.toPlainText() == "a castle on a hill, golden hour"
    assert window.prompt_panel.sampler_button.text().startswith("DPM++ 2M")
    # every part of the recipe goes out with the next job, edited in a widget or not
    from app.recipe import recipe_from_file

    assert c.generation.to_params() == recipe_from_file(a1111_png).model_copy(
        update={"model": None}
    )
    await window.canvas.wait_for_image(5)


async def test_drop_other_tools_files_says_what_it_restored(window, tmp_path):
    """Files from A1111 and ComfyUI restore what they name, say what they adjusted and left
    out; a file that restores nothing leaves the prompt alone."""
    import json

    from engine.protocol import SamplerInfo

    from .test_recipe import _png, comfy_graph

    c = window.controller
    c.engine.samplers = [
        SamplerInfo(name="DPM++ 2M", description="."),
        SamplerInfo(name="Euler", description="."),
    ]
    c.generation.steps, c.generation.prompt = 17, "unchanged"
    drop(window, _png(tmp_path / "empty.png", parameters=" "))
    assert (
        c.generation.prompt == "unchanged"
        and "no generation settings" in window.status.message.text()
    )
    drop(window, _png(tmp_path / "p.png", parameters="only a prompt\nNegative prompt: dull"))
    assert (c.generation.prompt, c.generation.negative_prompt) == ("only a prompt", "dull")
    assert c.generation.steps == 17  # not in the file: kept, as A1111 does
    drop(
        window,
        _png(
            tmp_path / "w.png",
            parameters=(
                "wide\nSteps: 30, Sampler: Restart, Size: 1366x768, Hires upscale: 2, Hires steps: 9"
            ),
        ),
    )
    text = window.toast.label.text()
    assert (c.generation.width, c.generation.height) == (1368, 768)
    assert "1366×768" in text and "Hires upscale, Hires steps" in text and "'Restart'" in text
    drop(window, _png(tmp_path / "comfy.png", prompt=json.dumps(comfy_graph())))
    assert (c.generation.prompt, c.generation.sampler, c.generation.width) == (
        "a fox in snow",
        "DPM++ 2M",
        768,
    )
    assert c.generation.option("schedule") == "karras"
    assert "(ComfyUI)" in window.toast.label.text()


async def test_queue_dock_cards_cancel_and_move(window, qtbot):
    c = window.controller
    for jid in ("a", "b", "c"):
        c.handle_event(JobQueued(job=make_job(jid)))
    c.handle_event(QueueChanged(order=["a", "b", "c"]))
    panel = window.queue_panel
    assert set(panel.list.cards) == {"a", "b", "c"}
    card_b = panel.card("b")
    assert card_b is not None and card_b.badge.text() == "#2"
    with qtbot.waitSignal(panel.cancel_requested) as sig:
        card_b.cancel_button.click()
    assert sig.args == ["b"]
    with qtbot.waitSignal(panel.move_requested) as sig:
        card_b.up_button.click()
    assert sig.args == ["b", 0]
    # the move shows at once (the engine's answer confirms it later)
    assert c.jobs.queued_ids() == ["b", "a", "c"]
    assert not panel.card("b").up_button.isEnabled()
    assert panel.card("a").badge.text() == "#2"
    # dragging card "c" above card "b" asks for position 0
    mime = QMimeData()
    mime.setData(JOB_MIME, b"c")
    top = panel.card("b").geometry().top() + 2
    event = QDropEvent(
        QPoint(20, top).toPointF(),
        Qt.DropAction.MoveAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(panel.move_requested) as sig:
        panel.list.dropEvent(event)
    assert sig.args == ["c", 0]


def test_fit_job_cards_show_what_they_fit_where_image_jobs_show_a_picture(window):
    from engine.protocol import Job, JobState, UncertaintyFitJob, utcnow

    c = window.controller
    c.handle_event(
        JobQueued(
            job=Job(
                id="fit",
                kind="uncertainty_fit",
                state=JobState.queued,
                created_at=utcnow(),
                spec=UncertaintyFitJob(),
            )
        )
    )
    c.handle_event(JobQueued(job=make_job("gen")))
    panel = window.queue_panel
    assert panel.card("fit").thumb.text() == "σ²"
    assert panel.card("gen").thumb.text() == ""  # an image job waits for its preview


def test_single_key_shortcuts_do_not_steal_typing(window, qtbot):
    spin = window.prompt_panel.steps_spin
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin, "1")
    assert spin.value() == 1
    window.prompt_edit.setFocus()
    qtbot.keyClicks(window.prompt_edit, "f1")
    assert window.controller.generation.prompt.endswith("f1")


async def test_canvas_shows_images_and_waits(window):
    c = window.controller
    waiter = asyncio.ensure_future(window.canvas.wait_for_image(5))
    await asyncio.sleep(0)
    c.canvas.show_image(
        CanvasImage(data=png_bytes(), path=Path("/x/y.png"), seed=5, width=64, height=64)
    )
    assert await waiter == "/x/y.png"
    view = window.canvas.view
    assert view.has_image
    view.actual_size()
    assert view.zoom == 1.0
    view.zoom_by(2)
    assert view.zoom == 2.0 and not view.fit_mode
    view.fit()
    assert view.fit_mode
    assert "seed 5" in window.canvas.caption.text()


async def test_batch_shows_a_strip(window):
    c = window.controller
    c.canvas.follow_job("j", 4)
    for i in range(4):
        c.canvas.set_result("j", i, png_bytes((i * 60, 0, 0)), seed=i)
    strip = window.canvas.strip
    assert strip.isVisible() and strip.count() == 4
    strip.setCurrentRow(1)
    assert c.canvas.current == 1


async def test_history_click_opens(window, qtbot, tmp_path):
    c = window.controller
    img = tmp_path / "h.png"
    img.write_bytes(png_bytes())
    entry = c.history.index.add(img, make_job().spec.params, seed=42)
    c.history.add(entry)
    view = window.history_view
    assert view.count() == 1
    with qtbot.waitSignal(window.history_panel.use_settings_requested) as sig:
        window.history_panel.view.setCurrentRow(0)
        window.history_panel.use_button.click()
    assert sig.args[0].seed == 42
    c.generation.prompt = "other"
    c.generate_jobs.use_settings(sig.args[0].params)
    assert c.generation.prompt == "harbour" and c.generation.seed == 42


def test_settings_dialog_round_trip(window):
    dialog = window.open_settings()
    dialog.remote_radio.setChecked(True)
    dialog.url_edit.setText("http://gpu:8765")
    dialog.token_edit.setText("t")
    assert dialog.apply() is True
    s = window.controller.settings
    assert (s.engine_mode, s.remote_url, s.remote_token) == ("remote", "http://gpu:8765", "t")
    assert s.fast_path and dialog.fast_check.isChecked()
    dialog.fast_check.setChecked(False)
    dialog.apply()
    assert s.fast_path is False
    # GPU memory: the placement reaches the client's next model load (LoadModelRequest.offload)
    assert s.offload == "none" and dialog.offload_combo.currentData() == "none"
    dialog.offload_combo.setCurrentIndex(dialog.offload_combo.findData("t5-cpu"))
    assert dialog.apply() is False  # no engine restart: it applies from the next load
    assert s.offload == "t5-cpu"
    client = window.controller.client
    assert client is None or client.offload == "t5-cpu"
    dialog.reject()
