"""Dialogs and menus made per use are deleted when they are done with, not kept by their parent.

A widget made with a parent belongs to that parent until it is deleted: closing or hiding it
does not free it, and dropping the last Python reference does not either, because Qt's parent
holds it. So a dialog or a context menu created each time one is asked for, with the window as
its parent, stays alive (its C++ widgets, layouts, styles) for the rest of the session: the
Compare… dialog, opened for every sampler grid, kept ~125 KB of native memory each
(docs/performance.md, "Soak"). These helpers hand such a widget to ``deleteLater`` once it has
answered, after the handlers connected before them have run.
"""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QMenu


def delete_when_finished(dialog: QDialog) -> QDialog:
    """Delete ``dialog`` once it is accepted, rejected or closed; connect its own ``finished``
    handlers before calling this, so that they still read its fields."""
    dialog.finished.connect(dialog.deleteLater)
    return dialog


def delete_when_hidden(menu: QMenu) -> QMenu:
    """Delete a popped-up ``menu`` once it closes (the chosen action has run by then: the
    deletion waits for the event loop)."""
    menu.aboutToHide.connect(menu.deleteLater)
    return menu
