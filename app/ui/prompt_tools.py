"""The prompt language in the Prompt panel: highlighting, tokens per chunk, the LoRA picker and
the ``<lora:`` completion. State in :class:`app.state.prompt_tools.PromptTools`; the engine
work in :mod:`app.controllers.prompt_tools`. Kept apart from :mod:`app.ui.prompt_assist` (the
model's vocabulary), which completes words; this completes LoRA names after ``<lora:``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QStringListModel, Qt, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QCompleter, QLabel, QMenu, QToolButton

from app.state.prompt_tools import (
    PromptTools,
    lora_tag,
    matching_loras,
    tag_being_typed,
    token_label,
    token_tooltip,
)

from .prompt_highlighter import PromptHighlighter

if TYPE_CHECKING:
    from .prompt_edit import PromptEdit


class PromptLanguageTools(QObject):
    """Highlighters on both boxes, their token counters, the LoRA button and completer."""

    #: The LoRA menu is about to open: the controller refreshes the list.
    loras_wanted = Signal()

    def __init__(
        self,
        prompt: PromptEdit,
        negative: PromptEdit,
        state: PromptTools,
        parent: QObject | None = None,
    ):
        super().__init__(parent or prompt)
        self.prompt, self.negative, self.state = prompt, negative, state
        self.highlighters = [
            PromptHighlighter(prompt.document()),
            PromptHighlighter(negative.document()),
        ]

        self.prompt_tokens = self._counter("prompt_tokens_label")
        self.negative_tokens = self._counter("negative_tokens_label")

        self.lora_button = QToolButton()
        self.lora_button.setObjectName("lora_button")
        self.lora_button.setText("LoRA")
        self.lora_button.setToolTip(
            "Insert a LoRA tag <lora:name:1> at the cursor: the LoRAs "
            "in the models folders' loras/ (see Settings)"
        )
        self.lora_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.lora_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.lora_menu = QMenu(self.lora_button)
        self.lora_menu.setObjectName("lora_menu")
        self.lora_menu.aboutToShow.connect(self.loras_wanted.emit)
        self.lora_button.setMenu(self.lora_menu)

        self.names = QStringListModel(self)
        self.completer = QCompleter(self.names, self)
        self.completer.setObjectName("lora_completer")
        self.completer.setWidget(prompt)
        self.completer.setCompletionMode(QCompleter.CompletionMode.UnfilteredPopupCompletion)
        self.completer.activated[str].connect(self.complete_with)
        prompt.other_popups.append(self.completer.popup())
        prompt.typed.connect(self.update_completion)

        state.loras_changed.connect(lambda _v: self._fill_menu())
        state.prompt_tokens_changed.connect(lambda c: self._show(self.prompt_tokens, c))
        state.negative_tokens_changed.connect(lambda c: self._show(self.negative_tokens, c))
        self._fill_menu()

    @staticmethod
    def _counter(name: str) -> QLabel:
        label = QLabel()
        label.setObjectName(name)
        label.setProperty("class", "Muted")
        label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return label

    @staticmethod
    def _show(label: QLabel, count) -> None:
        label.setText(token_label(count))
        label.setToolTip(token_tooltip(count))

    # ----------------------------------------------------------------- picker
    def _fill_menu(self) -> None:
        self.lora_menu.clear()
        if not self.state.loras:
            none = self.lora_menu.addAction(
                "No LoRAs installed: put .safetensors files into a models folder's loras/"
            )
            none.setEnabled(False)
            return
        for lora in self.state.loras:
            action = self.lora_menu.addAction(f"{lora.name}    ({lora.base})")
            action.setToolTip(lora.problem or lora.path)
            action.setEnabled(not lora.problem)
            action.triggered.connect(lambda _c=False, n=lora.name: self.insert_tag(n))

    def insert_tag(self, name: str) -> None:
        """Put ``<lora:name:1>`` at the cursor, with a space before it where needed."""
        cursor = self.prompt.textCursor()
        text = self.prompt.toPlainText()
        pos = cursor.position()
        sep = " " if pos and not text[pos - 1].isspace() else ""
        cursor.insertText(sep + lora_tag(name))
        self.prompt.setTextCursor(cursor)
        self.prompt.setFocus()

    # ----------------------------------------------------------------- completion
    def update_completion(self) -> None:
        popup = self.completer.popup()
        cursor = self.prompt.textCursor()
        found = tag_being_typed(self.prompt.toPlainText(), cursor.position())
        matches = matching_loras(self.state.loras, found[1]) if found else []
        if not matches:
            popup.hide()
            return
        self.names.setStringList([x.name for x in matches])
        self.completer.setCompletionPrefix("")
        rect = self.prompt.cursorRect()
        rect.setWidth(
            max(200, popup.sizeHintForColumn(0) + popup.verticalScrollBar().sizeHint().width())
        )
        self.completer.complete(rect)
        popup.setCurrentIndex(self.completer.completionModel().index(0, 0))

    def complete_with(self, name: str) -> None:
        """Replace the typed part of the name with ``name:1>``."""
        cursor = self.prompt.textCursor()
        found = tag_being_typed(self.prompt.toPlainText(), cursor.position())
        if found is None:
            return
        cursor.setPosition(found[0], QTextCursor.MoveMode.KeepAnchor)
        cursor.insertText(f"{name}:1>")
        self.prompt.setTextCursor(cursor)
        self.completer.popup().hide()
