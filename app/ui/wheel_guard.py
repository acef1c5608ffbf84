"""No silent changes: value widgets take the mouse wheel only when they have keyboard focus.

Scrolling a long panel passes over combo boxes, spin boxes and sliders; Qt gives each of them
the wheel (and, by default, focus from it), so scrolling past a "Method" combo changed LOVECon
into ControlVideo. :class:`WheelGuard`, installed once on the application, makes every such
widget take focus only by click or Tab (``StrongFocus``) and hands the wheel of an unfocused one
on to its parent, so the panel scrolls instead. A focused widget keeps the wheel as usual.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QComboBox, QSlider, QWidget

#: The widgets whose value a stray wheel would change.
GUARDED = (QAbstractSpinBox, QComboBox, QSlider)


def is_guarded(obj: QObject) -> bool:
    return isinstance(obj, GUARDED)


class WheelGuard(QObject):
    """Application-wide event filter (see the module docstring)."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.Polish and is_guarded(obj):
            if obj.focusPolicy() == Qt.FocusPolicy.WheelFocus:
                obj.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        elif kind == QEvent.Type.Wheel and is_guarded(obj) and not _focused(obj):
            pass_on(obj, event)  # the panel scrolls; the value stays as it was
            event.accept()
            return True
        return False


def pass_on(widget: QWidget, event: QWheelEvent) -> None:
    """Give ``event`` to ``widget``'s ancestors, nearest first, until one takes it.

    Done here rather than left to QApplication, which propagates only spontaneous (real mouse)
    events: this way a synthetic wheel (tests, accessibility tools) scrolls the same.
    """
    pos = QPointF(event.position())
    w = widget
    while not w.isWindow():
        pos += QPointF(w.pos())
        w = w.parentWidget()
        if w is None:
            return
        copy = QWheelEvent(
            pos,
            event.globalPosition(),
            event.pixelDelta(),
            event.angleDelta(),
            event.buttons(),
            event.modifiers(),
            event.phase(),
            event.inverted(),
            event.source(),
        )
        QApplication.sendEvent(w, copy)
        if copy.isAccepted():
            return


def _focused(widget: QWidget) -> bool:
    """The widget or its inner editor (a spin box's line edit, an editable combo's) has focus."""
    focus = QApplication.focusWidget()
    return focus is not None and (focus is widget or widget.isAncestorOf(focus))


def install_wheel_guard(app: QApplication) -> WheelGuard:
    """Install the guard on ``app`` once (later calls return the same one)."""
    guard = app.findChild(WheelGuard, "wheel_guard")
    if guard is None:
        guard = WheelGuard(app)
        guard.setObjectName("wheel_guard")
        app.installEventFilter(guard)
    return guard
