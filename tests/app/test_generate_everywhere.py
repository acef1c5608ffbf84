"""Issue 14 item 5: Generate (with its Ctrl+Enter hint) is in view on every panel, and Esc
cancels the running job from anywhere — yet leaves a modal dialog's or a popup's Esc alone."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QDialog

from engine.protocol import JobProgress, JobQueued, JobStarted

from .test_controller import make_job
from .test_window import window  # noqa: F401

DOCKS = ("prompt_dock", "sampler_dock", "video_dock", "uncertainty_dock", "robustness_dock")


def _inside_window(win, widget) -> bool:
    top_left = widget.mapTo(win, widget.rect().topLeft())
    bottom_right = widget.mapTo(win, widget.rect().bottomRight())
    return win.rect().contains(top_left) and win.rect().contains(bottom_right)


def test_generate_and_its_hint_are_in_view_on_every_panel(window, qtbot):  # noqa: F811
    for size in ((1280, 800), (1920, 1080)):
        window.resize(*size)
        for name in DOCKS:
            dock = getattr(window, name)
            dock.show()
            dock.raise_()
            qtbot.wait(10)
            for w in (
                window.generate_button,
                window.generate_bar.hint,
                window.generate_bar.cancel_button,
            ):
                assert w.isVisible(), (name, size, w.objectName())
                assert _inside_window(window, w), (name, size, w.objectName())
            assert "Ctrl+Enter" in window.generate_bar.hint.text()
            assert window.generate_button.text() == "Generate"
    window.video_dock.raise_()
    before = len(window.controller.generate_jobs.pending)
    window.generate_button.click()
    assert len(window.controller.generate_jobs.pending) == before + 1


def _running(window) -> str:  # noqa: F811
    job = make_job("j-run")
    c = window.controller
    c.handle_event(JobQueued(job=job))
    c.handle_event(JobStarted(job_id=job.id))
    c.handle_event(JobProgress(job_id=job.id, step=1, total=10))
    return job.id


def test_escape_cancels_from_any_panel_and_floating_dock(window, qtbot, monkeypatch):  # noqa: F811
    cancelled: list[str] = []
    monkeypatch.setattr(window.controller.queue, "cancel", cancelled.append)
    job_id = _running(window)
    assert window.generate_bar.cancel_button.isEnabled()
    window.activateWindow()
    for focus in (
        window.prompt_edit,
        window.video_panel.source_prompt_edit,
        window.uncertainty_panel.keep_spin,
        window.canvas.view,
    ):
        focus.setFocus()
        qtbot.keyClick(focus, Qt.Key.Key_Escape)
    assert cancelled == [job_id] * 4
    # A floating dock is a window of its own: Esc works there too.
    window.sampler_dock.setFloating(True)
    window.sampler_dock.show()
    window.sampler_dock.activateWindow()
    qtbot.waitUntil(lambda: window.sampler_dock.isVisible())
    qtbot.keyClick(window.sampler_panel, Qt.Key.Key_Escape)
    assert cancelled == [job_id] * 5
    window.sampler_dock.setFloating(False)
    # The toolbar's Cancel does the same.
    window.generate_bar.cancel_button.click()
    assert cancelled == [job_id] * 6


def test_escape_leaves_dialogs_and_popups_their_own(window, qtbot, monkeypatch):  # noqa: F811
    cancelled: list[str] = []
    monkeypatch.setattr(window.controller.queue, "cancel", cancelled.append)
    _running(window)
    window.uncertainty_dock.raise_()
    combo = window.uncertainty_panel.colormap_combo  # always enabled
    qtbot.waitUntil(combo.isVisible)
    combo.setFocus()
    combo.showPopup()
    qtbot.waitUntil(lambda: QApplication.activePopupWidget() is not None)
    qtbot.keyClick(QApplication.activePopupWidget(), Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: QApplication.activePopupWidget() is None)
    assert cancelled == []  # Esc closed the list, not the job
    dialog = QDialog(window)
    dialog.setModal(True)
    dialog.open()
    qtbot.waitUntil(dialog.isVisible)
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not dialog.isVisible())
    assert cancelled == []


def test_escape_with_nothing_running_says_so(window, qtbot):  # noqa: F811
    notices: list[tuple[str, str]] = []
    window.controller.notice.connect(lambda level, text: notices.append((level, text)))
    assert not window.generate_bar.cancel_button.isEnabled()
    window.prompt_edit.setFocus()
    qtbot.keyClick(window.prompt_edit, Qt.Key.Key_Escape)
    assert ("info", "Nothing is running.") in notices
