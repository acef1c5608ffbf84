"""Issue 14 item 6: nothing changes unless the artist meant it — the wheel over an unfocused
combo or spin box scrolls the panel, "Keep the N most certain" keeps the artist's N, and the
opacity slider is off where opacity does not apply (side by side)."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QComboBox, QScrollArea, QSpinBox

from app.state.canvas import CanvasImage

from .test_uncertainty_panel import png, umap
from .test_window import window  # noqa: F401


def wheel(widget, steps: int = -1) -> None:
    """A real wheel event through QApplication (so app-wide filters and propagation apply)."""
    pos = QPointF(widget.rect().center())
    event = QWheelEvent(
        pos,
        QPointF(widget.mapToGlobal(pos.toPoint())),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def _scroll_area(widget) -> QScrollArea:
    w = widget.parentWidget()
    while w is not None and not isinstance(w, QScrollArea):
        w = w.parentWidget()
    assert w is not None
    return w


def test_wheel_over_an_unfocused_combo_scrolls_the_panel(window, qtbot):  # noqa: F811
    window.video_dock.show()
    window.video_dock.raise_()
    window.resize(1280, 600)  # short: the Video panel's settings scroll
    panel = window.video_panel
    combo = panel.method_combo
    qtbot.waitUntil(lambda: combo.isVisible())
    assert combo.focusPolicy() == Qt.FocusPolicy.StrongFocus  # the wheel gives no focus
    scroll = _scroll_area(combo).verticalScrollBar()
    assert scroll.maximum() > 0, "the panel should scroll at this height"
    scroll.setValue(scroll.maximum() // 2)
    before, position = combo.currentData(), scroll.value()
    window.prompt_edit.setFocus()
    wheel(combo, -1)
    assert combo.currentData() == before == window.controller.video.method
    assert scroll.value() != position, "the wheel should have scrolled the panel instead"

    # Focused (clicked or tabbed into), the combo takes the wheel as usual.
    combo.setFocus()
    qtbot.waitUntil(combo.hasFocus)
    wheel(combo, -1)
    assert combo.currentData() != before
    assert window.controller.video.method == combo.currentData()


def test_every_value_widget_is_guarded(window):  # noqa: F811
    for cls in (QComboBox, QSpinBox):
        widgets = window.findChildren(cls)
        assert widgets
        for w in widgets:
            if w.isVisibleTo(window):
                assert w.focusPolicy() != Qt.FocusPolicy.WheelFocus, w.objectName()
    spin = window.prompt_panel.steps_spin
    window.prompt_edit.setFocus()
    steps = spin.value()
    wheel(spin, 1)
    assert spin.value() == steps == window.controller.generation.steps


def _scored_batch(window, n: int = 6) -> None:  # noqa: F811
    images = [CanvasImage(data=png(), seed=i, params=None) for i in range(n)]
    for i, im in enumerate(images):
        im.uncertainty = umap([[0.01 * (n - i)]])
    window.controller.canvas.show_images(images)
    window.controller.canvas.maps_changed.emit()


def test_keep_most_certain_keeps_the_number_chosen(window):  # noqa: F811
    panel = window.uncertainty_panel
    _scored_batch(window, 6)
    assert panel.keep_spin.value() == 3  # the better half, offered for a new batch
    panel.keep_spin.setValue(2)
    panel.keep_button.click()
    assert len(window.controller.canvas.images) == 2
    assert panel.keep_spin.value() == 2, "keeping must not change the number by itself"
    panel.show_all_button.click()
    assert len(window.controller.canvas.images) == 6
    assert panel.keep_spin.value() == 2
    panel.sort_button.click()
    assert panel.keep_spin.value() == 2
    _scored_batch(window, 4)  # a new batch: a new offer
    assert panel.keep_spin.value() == 2 and panel.keep_spin.maximum() == 4


def test_opacity_is_off_side_by_side(window):  # noqa: F811
    panel = window.uncertainty_panel
    view = window.controller.uncertainty_view
    view.layout = "overlay"
    assert all(w.isEnabled() for w in panel.opacity_widgets)
    view.layout = "side"
    assert not any(w.isEnabled() for w in panel.opacity_widgets)
    assert "overlay only" in panel.opacity_slider.toolTip()
    panel.layout_combo.setCurrentIndex(panel.layout_combo.findData("overlay"))
    panel.layout_combo.activated.emit(panel.layout_combo.currentIndex())
    assert view.layout == "overlay" and panel.opacity_slider.isEnabled()
