"""A short message floating over the canvas (dropped files, failures), fading on its own."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QWidget

from .theme import repolish


class Toast(QFrame):
    """``show_message(level, text)``; hides after a few seconds or on click."""

    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.setObjectName("Toast")
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setMaximumWidth(520)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(14, 10, 14, 10)
        lay.addWidget(self.label)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)
        self.hide()

    def show_message(self, level: str, text: str, ms: int | None = None) -> None:
        self.setProperty("level", level)
        repolish(self)
        icon = {"error": "⚠  ", "warning": "⚠  "}.get(level, "")
        self.label.setText(icon + text)
        self.adjustSize()
        parent = self.parentWidget()
        if parent is not None:
            self.move((parent.width() - self.width()) // 2, 56)
        self.show()
        self.raise_()
        self._timer.start(ms or (9000 if level == "error" else 4000))

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.hide()
