"""The prompt box: Ctrl+Enter goes to the Generate shortcut, and completion popups keep their
Enter/Tab/Esc (app/ui/prompt_assist.py, app/ui/prompt_tools.py)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QPlainTextEdit, QSizePolicy, QWidget


class PromptEdit(QPlainTextEdit):
    """A prompt box that leaves Ctrl+Enter to the Generate shortcut instead of a newline."""

    #: A key that may change the text was handled (a completer follows typing with it; it
    #: also hears keys its popup forwards, which event filters do not see).
    typed = Signal()
    _POPUP_KEYS = (
        Qt.Key.Key_Return,
        Qt.Key.Key_Enter,
        Qt.Key.Key_Tab,
        Qt.Key.Key_Backtab,
        Qt.Key.Key_Escape,
    )

    def __init__(self, placeholder: str, lines: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.setPlaceholderText(placeholder)
        self.setTabChangesFocus(True)
        line = self.fontMetrics().lineSpacing()
        self.setMinimumHeight(line * lines + 14)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        #: A completion popup (app/ui/prompt_assist.py); while it shows, Enter/Tab/Esc are its.
        self.completion_popup: QWidget | None = None
        #: Other completers' popups (app/ui/prompt_tools.py: LoRA names), treated the same way.
        self.other_popups: list[QWidget] = []

    def keyPressEvent(self, event) -> None:
        if (
            event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
            and event.modifiers() & Qt.KeyboardModifier.ControlModifier
        ):
            event.ignore()  # let the window's shortcut have it
            return
        popups = [self.completion_popup, *self.other_popups]
        if event.key() in self._POPUP_KEYS and any(p is not None and p.isVisible() for p in popups):
            event.ignore()  # the completer inserts the chosen phrase
            return
        super().keyPressEvent(event)
        if event.text() or event.key() in (Qt.Key.Key_Backspace, Qt.Key.Key_Delete):
            self.typed.emit()
