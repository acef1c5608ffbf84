"""Issue 14 item 4: every panel fits the window at 1280×800 and 1920×1080, in both themes —
no label elided or cut, no control pushed past its panel's edge — and its text is readable
(WCAG AA contrast against what is painted behind it). Screenshots of each state are written
to ``$SFUMATO_SHOTS`` when set (CI keeps them as artifacts; look at them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractScrollArea,
    QApplication,
    QComboBox,
    QDockWidget,
    QLabel,
    QMainWindow,
    QStyle,
    QStyleOptionComboBox,
    QTabBar,
    QToolBar,
    QWidget,
)

from app.state.settings import DARK, LIGHT
from app.ui.contrast import AA_BODY, AA_LARGE, contrast_ratio
from app.ui.elided_label import ElidedLabel
from app.ui.theme import apply_theme
from engine.protocol import (
    EngineState,
    Health,
    JobFinished,
    JobQueued,
    JobStarted,
    JobState,
    ModelInfo,
)

from .test_controller import make_job
from .test_window import window  # noqa: F401

SIZES = ((1280, 800), (1920, 1080))
PANELS = ("prompt_dock", "sampler_dock", "video_dock", "uncertainty_dock", "robustness_dock")


def _global_rect(w: QWidget) -> QRect:
    return QRect(w.mapToGlobal(QPoint(0, 0)), w.size())


def _clip_rect(w: QWidget) -> QRect:
    """The part of the screen ``w`` may paint in: its window, cut by every scroll viewport
    above it horizontally (a scroll area scrolls only vertically here)."""
    rect = _global_rect(w.window())
    p = w.parentWidget()
    while p is not None and not p.isWindow():
        if isinstance(p, QAbstractScrollArea) and p.viewport().isAncestorOf(w):
            vp = _global_rect(p.viewport())
            rect = QRect(
                max(rect.left(), vp.left()),
                rect.top(),
                min(rect.right(), vp.right()) - max(rect.left(), vp.left()) + 1,
                rect.height(),
            )
        elif isinstance(p, QDockWidget):
            d = _global_rect(p)
            rect = rect.intersected(d)
        p = p.parentWidget()
    return rect


def layout_problems(root: QWidget) -> list[str]:
    """What does not fit under ``root``: clipped labels/buttons/combos, widgets past an edge."""
    out: list[str] = []
    for w in root.findChildren(QWidget):
        if not w.isVisible() or w.width() <= 1 or isinstance(w, QAbstractScrollArea):
            continue
        name = w.objectName() or type(w).__name__
        text = w.text() if isinstance(w, QLabel | QAbstractButton) else ""
        what = f"{name} {text!r}"[:80]
        clip = _clip_rect(w)
        mine = _global_rect(w)
        if mine.left() < clip.left() - 1 or mine.right() > clip.right() + 1:
            out.append(
                f"{what}: x {mine.left()}..{mine.right()} outside {clip.left()}..{clip.right()}"
            )
            continue
        if isinstance(w, ElidedLabel):
            continue  # shortens by design, with the full text in its tooltip
        if isinstance(w, QLabel) and w.text() and w.pixmap().isNull():
            if w.wordWrap():
                need = w.heightForWidth(w.width())
                if need > w.height() + 1:
                    out.append(f"{what}: needs {need} px of height, has {w.height()}")
            elif w.sizeHint().width() > w.width() + 1:
                out.append(f"{what}: needs {w.sizeHint().width()} px, has {w.width()}")
        elif isinstance(w, QAbstractButton | QComboBox):
            need = w.minimumSizeHint().width()
            if need > w.width() + 1:
                out.append(f"{what}: needs {need} px, has {w.width()}")
            elif isinstance(w, QComboBox) and w.currentText() and not w.isEditable():
                opt = QStyleOptionComboBox()
                w.initStyleOption(opt)
                field = w.style().subControlRect(
                    QStyle.ComplexControl.CC_ComboBox,
                    opt,
                    QStyle.SubControl.SC_ComboBoxEditField,
                    w,
                )
                need = w.fontMetrics().horizontalAdvance(w.currentText())
                if need > field.width() + 1:
                    out.append(
                        f"combo {w.currentText()!r}: text needs {need} px, its field "
                        f"has {field.width()}"
                    )
    return out


def tab_problems(win: QMainWindow) -> list[str]:
    """Dock tab bars (children of the window) whose tabs would be elided: every tab's text
    must fit in the bar."""
    out = []
    for bar in win.findChildren(QTabBar):
        if not bar.isVisible() or bar.count() < 2:
            continue
        need = sum(bar.tabSizeHint(i).width() for i in range(bar.count()))
        if need > bar.width() + 1:
            tabs = ", ".join(bar.tabText(i) for i in range(bar.count()))
            out.append(f"tab bar ({tabs}): needs {need} px, has {bar.width()}")
    return out


def _background(shot: QImage, rect: QRect) -> QColor:
    """The most common colour in ``rect`` of a screenshot: what is painted behind a label (its
    glyphs cover far fewer pixels than the space around and between them)."""
    counts: dict[int, int] = {}
    for y in range(rect.top(), rect.bottom() + 1, 2):
        for x in range(rect.left(), rect.right() + 1, 2):
            if shot.valid(x, y):
                rgb = shot.pixel(x, y) | 0xFF000000
                counts[rgb] = counts.get(rgb, 0) + 1
    return QColor(max(counts, key=counts.get)) if counts else QColor("#000000")


def contrast_problems(win: QMainWindow, root: QWidget) -> list[str]:
    """Every visible, enabled label under ``root`` whose text colour against the background
    painted behind it is under WCAG AA (4.5:1; 3:1 for large text)."""
    out: list[str] = []
    labels = [
        lab
        for lab in root.findChildren(QLabel)
        if lab.isVisible()
        and lab.isEnabled()
        and lab.text().strip()
        and lab.pixmap().isNull()
        and "<" not in lab.text()
    ]
    shot = win.grab().toImage()
    dpr = shot.devicePixelRatio()
    for lab in labels:
        lab.ensurePolished()
        fg = lab.palette().color(lab.foregroundRole())
        seen = lab.visibleRegion().boundingRect()  # the part not scrolled out of view
        if seen.isEmpty():
            continue
        top_left = lab.mapTo(win, seen.topLeft())
        rect = QRect(
            round(top_left.x() * dpr),
            round(top_left.y() * dpr),
            round(seen.width() * dpr),
            round(seen.height() * dpr),
        )
        bg = _background(shot, rect)
        font = lab.font()
        large = font.pointSizeF() >= 18 or (font.bold() and font.pointSizeF() >= 14)
        need = AA_LARGE if large else AA_BODY
        ratio = contrast_ratio(fg, bg)
        if ratio < need:
            out.append(
                f"{lab.objectName() or 'QLabel'} {lab.text()[:40]!r}: {fg.name()} on "
                f"{bg.name()} = {ratio:.2f}:1 < {need}"
            )
    return out


def _shots() -> Path | None:
    folder = os.environ.get("SFUMATO_SHOTS")
    if not folder:
        return None
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.mark.parametrize("theme", [DARK, LIGHT])
def test_every_panel_fits_and_reads_at_both_sizes(window, qtbot, theme):  # noqa: F811
    app = QApplication.instance()
    apply_theme(app, theme)
    shots = _shots()
    # Queue cards with their state badges (coloured text on tinted backgrounds), and a size
    # warning under Size: coloured text gets checked too.
    c = window.controller
    c.handle_event(JobQueued(job=make_job("done")))
    c.handle_event(JobFinished(job=make_job("done", state=JobState.done)))
    c.handle_event(JobQueued(job=make_job("running")))
    c.handle_event(JobStarted(job_id="running"))
    c.handle_event(JobQueued(job=make_job("waiting")))
    c.engine.models = [
        ModelInfo(
            id="tiny",
            name="Sfumato tiny",
            format="diffusers",
            path="/m",
            native_size=64,
            loaded=True,
        )
    ]
    c.engine.update_health(
        Health(version="t", state=EngineState.busy, device="cpu", dtype="float32", model="tiny")
    )
    c.engine.models_listed = True
    c.generation.set_size(512, 512)
    problems: list[str] = []
    try:
        for size in SIZES:
            window.resize(*size)
            for name in PANELS:
                dock = getattr(window, name)
                dock.show()
                dock.raise_()
                qtbot.wait(30)
                assert window.size().width() == size[0], "the window did not take the size"
                # the raised panel and what is always in view; the panels tabbed behind it
                # are parked off-screen by Qt and checked on their own turn
                roots = [
                    dock,
                    window.central,
                    window.queue_dock,
                    window.history_dock,
                    window.findChild(QToolBar, "MainToolbar"),
                    window.statusBar(),
                ]
                found = [
                    line
                    for root in roots
                    for line in layout_problems(root) + contrast_problems(window, root)
                ]
                found += tab_problems(window)
                for line in found:
                    problems.append(f"{theme} {size[0]}x{size[1]} {name}: {line}")
                if shots is not None:
                    window.grab().save(str(shots / f"{theme}-{size[0]}x{size[1]}-{name}.png"))
    finally:
        apply_theme(app, DARK)
    assert not problems, "\n".join(problems)


def test_the_video_stage_takes_the_centre(window, qtbot, tmp_path):  # noqa: F811
    window.resize(1280, 800)
    central = window.central
    assert central.currentWidget() is window.canvas
    window.video_dock.show()
    window.video_dock.raise_()
    qtbot.waitUntil(lambda: central.currentWidget() is window.video_panel.player)
    # source and result side by side, each larger than the dock could give them
    src, res = window.video_panel.source_view, window.video_panel.result_view
    assert src.isVisible() and res.isVisible()
    assert src.width() >= 250 and src.height() >= 250
    assert window.video_panel.drop_zone.title.isVisible()
    # back to the Prompt panel: the image again
    window.prompt_dock.raise_()
    qtbot.waitUntil(lambda: central.currentWidget() is window.canvas)
    # a dropped video shows the stage (without an engine, the panel says why it waits)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00" * 64)
    window.open_video(clip)
    assert central.currentWidget() is window.video_panel.player


@pytest.mark.parametrize("method", ["lovecon", "controlvideo"])
def test_the_video_panel_fits_with_every_option_shown(window, qtbot, method):  # noqa: F811
    """The rows a choice reveals (RIFE's weights, the annotator folder, ControlVideo's tuning)
    fit too, at the smaller size."""
    v = window.controller.video
    v.method = method
    v.smoothing = True
    v.interpolator = "rife"
    v.control_type = "hed"
    window.resize(1280, 800)
    window.video_dock.show()
    window.video_dock.raise_()
    qtbot.wait(30)
    panel = window.video_panel
    assert panel.annotator_edit.isVisible()
    assert panel.tuning_spin.isVisible() == (method == "controlvideo")
    assert panel.rife_edit.isVisible() == (method == "lovecon")
    problems = layout_problems(window.video_dock) + contrast_problems(window, window.video_dock)
    assert not problems, "\n".join(problems)
