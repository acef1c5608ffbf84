"""Generate, its Ctrl+Enter hint and Cancel (Esc), in the window's toolbar: in view on every
panel, as A1111 and InvokeAI keep theirs (the Prompt panel owns the button and the hint)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

from app.state.jobs import JobsState


class GenerateBar(QWidget):
    """``generate_button`` and ``hint`` (from the Prompt panel) with a Cancel button."""

    def __init__(
        self,
        generate_button: QPushButton,
        hint: QLabel,
        jobs: JobsState,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("GenerateBar")
        self.jobs = jobs
        self.generate_button = generate_button
        self.hint = hint
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("toolbar_cancel_button")
        self.cancel_button.setToolTip("Cancel the running job (Esc, from any panel)")
        generate_button.setMinimumWidth(150)
        generate_button.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        hint.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(8)
        lay.addWidget(hint)
        lay.addWidget(self.cancel_button)
        lay.addWidget(generate_button)
        jobs.changed.connect(self._update)
        jobs.job_updated.connect(lambda _id: self._update())
        self._update()

    def _update(self) -> None:
        running = self.jobs.running
        self.cancel_button.setEnabled(running is not None)
        self.cancel_button.setToolTip(
            f"Cancel {running.title} (Esc, from any panel)"
            if running is not None
            else "Nothing is running (Esc cancels the running job from any panel)"
        )
