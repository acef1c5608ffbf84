"""Leads the prompt box to what the active model knows: placeholder, ideas, completion, hint.

One object owns the three pieces the Prompt panel places (the "Prompt ideas" button, the hint
label under the box) and the completer it attaches to the box, and follows the engine's active
model. The words come from the model's vocabulary (:mod:`app.state.prompt_vocabulary`); with a
model that has none, the box keeps the general placeholder and no ideas, completion or hint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel, QTextCursor
from PySide6.QtWidgets import QCompleter, QLabel, QMenu, QToolButton

from app.state.engine import EngineInfo
from app.state.generation import GenerationSettings
from app.state.prompt_vocabulary import GENERAL_PLACEHOLDER, PromptGuide, fragment_at

if TYPE_CHECKING:
    from .prompt_edit import PromptEdit

#: The completer's role that holds the phrase to insert (the display adds the glyph).
PHRASE_ROLE = Qt.ItemDataRole.UserRole + 1


class PromptAssist(QObject):
    """Placeholder, "Prompt ideas" menu, completion popup and hint for one prompt box."""

    def __init__(
        self,
        edit: PromptEdit,
        engine: EngineInfo,
        settings: GenerationSettings,
        parent: QObject | None = None,
    ):
        super().__init__(parent or edit)
        self.edit = edit
        self.engine = engine
        self.settings = settings
        self.guide: PromptGuide | None = None
        self._guide_key: tuple | None = ("not yet",)  # the first refresh always applies

        self.ideas_button = QToolButton()
        self.ideas_button.setObjectName("prompt_ideas_button")
        self.ideas_button.setText("Prompt ideas")
        self.ideas_button.setToolTip("Prompts the built-in model knows how to draw")
        self.ideas_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.ideas_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.ideas_menu = QMenu(self.ideas_button)
        self.ideas_menu.setObjectName("prompt_ideas_menu")
        self.ideas_button.setMenu(self.ideas_menu)

        self.hint_label = QLabel()
        self.hint_label.setObjectName("Hint")
        self.hint_label.setWordWrap(True)
        self.hint_label.hide()

        self.model = QStandardItemModel(self)
        self.completer = QCompleter(self.model, self)
        self.completer.setObjectName("prompt_completer")
        self.completer.setWidget(edit)
        self.completer.setCompletionRole(PHRASE_ROLE)
        self.completer.setCompletionMode(QCompleter.CompletionMode.UnfilteredPopupCompletion)
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setMaxVisibleItems(10)
        self.completer.activated[str].connect(self.insert)

        # The box leaves Enter/Tab/Esc to the popup while it shows, and says when it was typed in.
        edit.completion_popup = self.completer.popup()
        edit.typed.connect(self.update_completions)
        settings.prompt_changed.connect(lambda _v: self._update_hint())
        engine.models_changed.connect(lambda _v: self.refresh())
        engine.health_changed.connect(lambda _v: self.refresh())
        self.refresh()

    # ----------------------------------------------------------------- model
    def refresh(self) -> None:
        """Follow the active model (the one a job naming none uses)."""
        model = self.engine.active_model
        guide = PromptGuide.for_model(model)
        key = (model.id, id(model.vocabulary)) if guide is not None and model else None
        if key == self._guide_key:
            return
        self._guide_key = key
        self.guide = guide
        self.edit.setPlaceholderText(guide.placeholder if guide else GENERAL_PLACEHOLDER)
        self.ideas_menu.clear()
        if guide is not None:
            for prompt in guide.ideas:
                action = self.ideas_menu.addAction(prompt)
                action.triggered.connect(lambda _c=False, p=prompt: self.use_idea(p))
        self.ideas_button.setVisible(guide is not None and bool(guide.ideas))
        self.completer.popup().hide()
        self._update_hint()

    def use_idea(self, prompt: str) -> None:
        self.settings.prompt = prompt
        self.edit.setFocus()
        self.edit.moveCursor(QTextCursor.MoveOperation.End)

    # ----------------------------------------------------------------- hint
    def _update_hint(self) -> None:
        text = self.guide.hint(self.settings.prompt) if self.guide is not None else ""
        self.hint_label.setText(text)
        self.hint_label.setVisible(bool(text))

    # ----------------------------------------------------------------- completion
    def update_completions(self) -> None:
        """Show the phrases that continue what is typed at the cursor, or hide the popup."""
        popup = self.completer.popup()
        if self.guide is None:
            popup.hide()
            return
        cursor = self.edit.textCursor()
        _, fragment = fragment_at(self.edit.toPlainText(), cursor.position())
        matches = self.guide.matches(fragment)
        if not matches or (len(matches) == 1 and matches[0].lower() == fragment.strip().lower()):
            popup.hide()
            return
        self.model.clear()
        for phrase in matches:
            symbol = self.guide.symbol(phrase)
            item = QStandardItem(f"{phrase}   {symbol}" if symbol else phrase)
            item.setData(phrase, PHRASE_ROLE)
            self.model.appendRow(item)
        self.completer.setCompletionPrefix("")
        rect = self.edit.cursorRect()
        rect.setWidth(
            max(260, popup.sizeHintForColumn(0) + popup.verticalScrollBar().sizeHint().width())
        )
        self.completer.complete(rect)
        popup.setCurrentIndex(self.completer.completionModel().index(0, 0))

    def insert(self, phrase: str) -> None:
        """Replace the phrase being typed with ``phrase``."""
        cursor = self.edit.textCursor()
        start, _ = fragment_at(self.edit.toPlainText(), cursor.position())
        cursor.setPosition(start, QTextCursor.MoveMode.KeepAnchor)
        cursor.insertText(phrase)
        self.edit.setTextCursor(cursor)
        self.completer.popup().hide()
