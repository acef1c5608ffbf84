"""Issue 14 item 10: results are findable — video results in the History, Queue cards keep
their pictures after a restart, a batch reads in generation order, the canvas says where its
job stands (no stale "Waiting for the engine…" / "Back to grid", a cancelled job marked),
right-click on the canvas, a Compare dialog whose tick boxes show and whose samplers can be
searched, and the README's sample clip one click away."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from app.library import HistoryIndex, is_video, poster_path, thumbnail_source
from app.sample_clip import sample_clip
from app.state.canvas import CanvasImage
from app.state.grid import CanvasGrid
from app.state.history import HistoryState
from app.state.jobs import canvas_status
from app.state.settings import DARK, LIGHT
from app.ui.compare_dialog import CompareDialog
from app.ui.contrast import contrast_ratio
from app.ui.theme import apply_theme
from engine.protocol import (
    GenerateParams,
    JobFinished,
    JobPreview,
    JobProgress,
    JobQueued,
    JobStarted,
    JobState,
    SamplerInfo,
)

from .test_controller import make_job
from .test_sampler_panel import grid_params
from .test_window import window  # noqa: F401


def png(colour=(200, 30, 30), size=(16, 16)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def p(prompt: str) -> GenerateParams:
    return GenerateParams(prompt=prompt, width=64, height=64, steps=4)


# --------------------------------------------------------------------------- history order
def test_a_batch_reads_in_generation_order(qapp, tmp_path: Path):
    idx = HistoryIndex(tmp_path / "h.sqlite3")
    idx.add(tmp_path / "old-000.png", p("older job"), created=50.0, job_id="old")
    # the batch's results were stored out of order (they download concurrently)
    for i, t in ((2, 101.0), (0, 102.0), (1, 103.0)):
        idx.add(tmp_path / f"new-00{i}.png", p("batch"), created=t, job_id="new")
    names = [e.path.name for e in idx.entries()]
    assert names == ["new-000.png", "new-001.png", "new-002.png", "old-000.png"]

    state = HistoryState(idx)
    state.load()
    entry = idx.add(tmp_path / "next-001.png", p("next"), created=200.0, job_id="next")
    state.add(entry)
    state.add(idx.add(tmp_path / "next-000.png", p("next"), created=201.0, job_id="next"))
    assert [e.path.name for e in state.entries][:3] == [
        "next-000.png",
        "next-001.png",
        "new-000.png",
    ]


def test_history_dock_shows_the_batch_in_order(window, tmp_path: Path):  # noqa: F811
    c = window.controller
    for i in (1, 0, 2):
        path = tmp_path / f"j-00{i}.png"
        path.write_bytes(png())
        c.history.add(c.history.index.add(path, p("b"), job_id="j"))
    view = window.history_view
    shown = [view.item(r).data(Qt.ItemDataRole.UserRole).path.name for r in range(view.count())]
    assert shown == ["j-000.png", "j-001.png", "j-002.png"]


# --------------------------------------------------------------------------- video results
async def test_a_video_result_enters_the_history_and_opens_in_the_video_panel(
    window,  # noqa: F811
    tmp_path: Path,
    monkeypatch,
):
    c = window.controller
    c.video.target_prompt = "a t-rex on a blue background"
    mp4 = tmp_path / "job9-video.mp4"
    mp4.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    await c.video_jobs.store("job9", mp4, png((10, 10, 200)))
    entry = c.history.entries[0]
    assert entry.path == mp4.resolve() and is_video(entry.path) and entry.job_id == "job9"
    assert poster_path(mp4).is_file() and thumbnail_source(mp4) == poster_path(mp4)
    assert [e.path for e in c.history.index.entries(search="blue background")] == [entry.path]
    item = window.history_view.item(0)
    assert item.toolTip().startswith("Video")
    opened: list[str] = []
    monkeypatch.setattr(c.video_jobs, "open_video", lambda path: opened.append(str(path)))
    await c.results._open_history(entry)
    assert opened == [str(entry.path)]
    assert window.central.showing_video


# --------------------------------------------------------------------------- queue thumbnails
async def test_queue_cards_get_their_pictures_back_after_a_restart(window, tmp_path):  # noqa: F811
    c = window.controller
    path = tmp_path / "done-000.png"
    data = png((0, 200, 0))
    path.write_bytes(data)
    c.history.index.add(path, p("done"), job_id="done")
    job = make_job("done", state=JobState.done)
    c.jobs.reset([job])  # what a new session hears from the engine: no thumbnail with it
    assert c.jobs.get("done").thumbnail is None
    await c.library.restore_thumbnails()
    assert c.jobs.get("done").thumbnail == data
    card = window.queue_panel.card("done")
    assert card.thumb.pixmap() is not None and not card.thumb.pixmap().isNull()


# --------------------------------------------------------------------------- canvas notices
def test_the_canvas_says_where_its_job_stands(window):  # noqa: F811
    c = window.controller
    canvas = window.canvas
    c.handle_event(JobQueued(job=make_job("run")))
    c.handle_event(JobStarted(job_id="run"))
    c.handle_event(JobQueued(job=make_job("next")))
    c.canvas.follow_job("next", 1, None)
    assert canvas._caption_text == "Queued · 1 job ahead"  # not "Waiting for the engine…"
    assert canvas.view.placeholder == ""  # nor "Write a prompt" behind it
    c.handle_event(JobFinished(job=make_job("run", state=JobState.done)))
    c.handle_event(JobStarted(job_id="next"))
    assert canvas._caption_text == "Starting…"
    c.handle_event(JobProgress(job_id="next", step=2, total=4))
    c.handle_event(
        JobPreview(
            job_id="next",
            step=2,
            width=16,
            height=16,
            png_b64=__import__("base64").b64encode(png()).decode(),
        )
    )
    assert canvas._caption_text.startswith("Preview")
    c.handle_event(JobFinished(job=make_job("next", state=JobState.cancelled)))
    assert canvas._caption_text.startswith("Cancelled · this preview was not saved")
    assert canvas.caption.property("state") == "cancelled"
    assert canvas_status(None) == "Waiting for the engine…"


def test_back_to_grid_goes_when_a_new_job_starts(window):  # noqa: F811
    c = window.controller
    grid = CanvasGrid("g", grid_params())
    c.canvas.follow_grid(grid)
    slot = grid.slot(0, 0)
    slot.image.data, slot.image.preview = png(), False
    c.canvas.open_cell(0, 0)
    assert window.canvas.back_button.isVisibleTo(window.canvas)  # from the grid: back to it
    c.canvas.follow_job("later", 1, None)
    assert not window.canvas.back_button.isVisibleTo(window.canvas)
    assert c.canvas.grid is None
    c.canvas.show_image(CanvasImage(data=png(), params=p("x")))
    assert not window.canvas.back_button.isVisibleTo(window.canvas)


# --------------------------------------------------------------------------- right-click
def test_right_click_copy_save_use_retry(window, tmp_path, monkeypatch):  # noqa: F811
    c = window.controller
    canvas = window.canvas
    assert [a.text() for a in canvas.context_menu().actions() if a.text()] == [
        "Copy image",
        "Save as…",
        "Use settings",
        "Retry",
    ]
    assert not any(a.isEnabled() for a in canvas.context_menu().actions() if a.text())
    params = p("a lighthouse").model_copy(update={"seed": 7})  # as the engine resolved it
    path = tmp_path / "x.png"
    path.write_bytes(png((1, 2, 3), (24, 16)))
    c.canvas.show_image(
        CanvasImage(data=path.read_bytes(), path=path, seed=42, width=24, height=16, params=params)
    )
    menu = canvas.context_menu()
    actions = {a.text(): a for a in menu.actions() if a.text()}
    assert all(a.isEnabled() for a in actions.values())
    actions["Copy image"].trigger()
    copied = QGuiApplication.clipboard().image()
    assert (copied.width(), copied.height()) == (24, 16)
    target = tmp_path / "saved.png"
    monkeypatch.setattr(
        "app.ui.desktop.QFileDialog.getSaveFileName", lambda *a, **k: (str(target), "")
    )
    actions["Save as…"].trigger()
    assert target.read_bytes() == path.read_bytes()
    before = len(c.generate_jobs.pending)
    actions["Retry with a new seed"].trigger()
    assert (
        len(c.generate_jobs.pending) == before + 1 and c.generate_jobs.pending[-1].seed == -1
    )  # not the same image
    assert c.generate_jobs.pending[-1].prompt == "a lighthouse"
    c.generation.prompt = "something else"
    actions["Use settings"].trigger()
    assert c.generation.prompt == "a lighthouse" and c.generation.seed == 42
    # the real right-click opens it over the image
    window.resize(1280, 800)
    canvas.view.customContextMenuRequested.emit(QPoint(50, 50))
    popup = QApplication.activePopupWidget()
    if popup is not None:
        popup.close()


# --------------------------------------------------------------------------- compare dialog
def _samplers() -> list[SamplerInfo]:
    names = ["Euler", "Euler a", "DPM++ 2M", "DPM++ 2M SDE", "DDIM", "UniPC", "LMS", "Heun"]
    return [
        SamplerInfo(
            name=n, description=f"{n} sampler", aliases=["k_dpmpp_2m"] if n == "DPM++ 2M" else []
        )
        for n in names
    ]


@pytest.mark.parametrize("theme", [DARK, LIGHT])
def test_compare_dialog_search_and_visible_tick_boxes(window, qtbot, theme):  # noqa: F811
    apply_theme(QApplication.instance(), theme)
    dialog = CompareDialog(
        _samplers(), p("x").model_copy(update={"sampler": "Euler"}), parent=window
    )
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert dialog.filter_samplers("dpm") == 2
    assert dialog.filter_samplers("k_dpmpp") == 1  # by its other names too
    dialog.search_edit.setText("euler")
    shown = [
        dialog.sampler_list.item(i).text()
        for i in range(dialog.sampler_list.count())
        if not dialog.sampler_list.item(i).isHidden()
    ]
    assert shown == ["Euler", "Euler a"]
    dialog.set_samplers(["Euler", "DDIM"])
    dialog.search_edit.setText("")
    choice, problem = dialog.choice()
    assert choice.samplers == ["Euler", "DDIM"] and not problem  # ticks survive the filter

    # an unticked box shows: its frame stands out from the row at 3:1 (WCAG, UI components)
    lst = dialog.sampler_list
    row = next(i for i in range(lst.count()) if lst.item(i).checkState() == Qt.CheckState.Unchecked)
    rect = lst.visualItemRect(lst.item(row))
    shot = lst.viewport().grab().toImage()
    dpr = shot.devicePixelRatio()
    background = shot.pixelColor(round((rect.right() - 4) * dpr), round(rect.center().y() * dpr))
    box = [
        shot.pixelColor(round(x * dpr), round(y * dpr))
        for x in range(rect.left(), rect.left() + 24)
        for y in range(rect.top(), rect.bottom())
    ]
    try:
        assert max(contrast_ratio(px, background) for px in box) >= 3.0
    finally:
        apply_theme(QApplication.instance(), DARK)


# --------------------------------------------------------------------------- sample clip
def test_try_the_sample_clip(window, monkeypatch):  # noqa: F811
    clip = sample_clip()
    assert clip is not None and clip.path.is_file() and clip.path.stat().st_size > 1000
    assert clip.source_prompt == "t-rex, twemoji style, on a white background"
    opened: list[str] = []
    c = window.controller
    monkeypatch.setattr(c.video_jobs, "open_video", lambda path: opened.append(str(path)))
    c.video.target_prompt = "kept as written"
    window.video_dock.show()
    window.video_dock.raise_()
    button = window.video_panel.drop_zone.sample_button
    assert button.isVisibleTo(window)
    button.click()
    assert opened == [str(clip.path)]
    assert c.video.source_prompt == clip.source_prompt
    assert c.video.target_prompt == "kept as written"  # the artist's words stay
    assert c.video.edit_phrase == "t-rex" and c.video.edit_type == "background"


def test_the_sample_caption_is_the_fit_sets():
    """The shipped clip's caption is the sprite's own (engine/video/sample_clip.py)."""
    import json

    from app.sample_clip import video_resources

    captions = json.loads(
        (video_resources().parents[0] / "fitsets" / "sfumato-tiny" / "captions.json").read_text()
    )
    assert captions["items"][0]["caption"] == sample_clip().source_prompt
