"""Shortcuts that work from anywhere in the app: Esc cancels the running job whether focus is
in the main window, a floating dock or the canvas.

An application-context shortcut would also take Esc from an open popup (a combo box's list),
which then stays open; :class:`PopupEscape` gives Esc back to the popup. Modal dialogs and
menus keep their own Esc (Qt does not fire an application shortcut that a modal dialog blocks,
and a menu takes its keys before shortcuts).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication, QWidget


class PopupEscape(QObject):
    """Application event filter: while a popup is open, Esc belongs to the popup."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if (
            event.type() == QEvent.Type.ShortcutOverride
            and event.key() == Qt.Key.Key_Escape
            and QApplication.activePopupWidget() is not None
        ):
            event.accept()  # an accepted override: no shortcut, the key goes to the popup
            return True
        return False


def application_action(
    owner: QWidget, text: str, key: QKeySequence | str, slot: Callable[[], object]
) -> QAction:
    """A QAction on ``owner`` whose shortcut fires from any window of the app."""
    action = QAction(text, owner)
    action.setShortcut(QKeySequence(key))
    action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
    action.triggered.connect(slot)
    owner.addAction(action)
    app = QApplication.instance()
    if app is not None and app.findChild(PopupEscape, "popup_escape") is None:
        guard = PopupEscape(app)
        guard.setObjectName("popup_escape")
        app.installEventFilter(guard)
    return action
