"""The prompt box leads to what the built-in model knows (placeholder, ideas, completion, hint),
other models keep the general placeholder; the first-run details around it (dice icon, model
picker and size while the engine starts)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.main import create_window, parse_args
from app.state.engine import Connection
from app.state.prompt_vocabulary import GENERAL_PLACEHOLDER, PromptGuide, fragment_at
from engine.models.registry import EMBEDDED_MODELS, describe
from engine.protocol import ModelInfo

TINY = EMBEDDED_MODELS / "sfumato-tiny"


@pytest.fixture(scope="module")
def tiny() -> ModelInfo:
    """The built-in model as the engine lists it: with the vocabulary shipped in its folder."""
    info = describe(TINY, embedded=True)
    assert info is not None and info.vocabulary is not None
    return info.model_copy(update={"loaded": True})


@pytest.fixture
def sd15() -> ModelInfo:
    return ModelInfo(
        id="sd15",
        name="Sd15",
        format="single_file",
        path="/m/sd15.safetensors",
        native_size=512,
        loaded=True,
    )


@pytest.fixture
def window(qtbot, tmp_path: Path):
    controller, win = create_window(parse_args(["--data-dir", str(tmp_path / "d"), "--no-engine"]))
    qtbot.addWidget(win)
    win.show()
    yield win
    controller.history.index.close()


# ----------------------------------------------------------------- the vocabulary, no widgets
def test_guide_reads_the_shipped_vocabulary(tiny, sd15):
    guide = PromptGuide.for_model(tiny)
    assert PromptGuide.for_model(sd15) is None and PromptGuide.for_model(None) is None
    assert len(guide.vocabulary.subjects) == 243
    assert guide.placeholder == "hamburger, twemoji style, on a purple background"
    assert guide.placeholder.split(",")[0] in guide.vocabulary.subjects
    assert all(p.split(",")[0] in guide.vocabulary.subjects for p in guide.ideas)
    assert guide.matches("roc")[0] == "rocket"
    assert "on a blue background" in guide.matches("blu")  # a word inside the phrase
    assert "twemoji style" in guide.matches("twe")
    assert guide.matches("r") == []  # too short to guess
    assert guide.symbol("rocket") == "🚀"


def test_hint_only_for_a_prompt_without_a_known_name(tiny):
    guide = PromptGuide.for_model(tiny)
    assert guide.hint("") == ""
    assert guide.hint("rocket, noto style, on a black background") == ""
    assert guide.hint("A big CAT FACE") == ""  # case and surrounding words do not matter
    hint = guide.hint("A lighthouse at dusk, oil painting")
    assert "243 emoji names" in hint and "Prompt ideas" in hint
    assert guide.known_subjects("red apple and a cat face") == ["red apple", "cat face"]
    assert guide.known_subjects("rocketship") == []  # whole words only


def test_fragment_is_the_phrase_after_the_last_comma():
    assert fragment_at("cat face, twe", 13) == (10, "twe")
    assert fragment_at("roc", 3) == (0, "roc")
    assert fragment_at("cat face,  ", 11) == (11, "")


# ----------------------------------------------------------------- the window
def test_builtin_model_sets_placeholder_ideas_and_hint_other_models_do_not(window, tiny, sd15):
    panel = window.prompt_panel
    assist = panel.prompt_assist
    engine = window.controller.engine
    assert window.prompt_edit.placeholderText() == GENERAL_PLACEHOLDER
    assert assist.ideas_button.isHidden()

    engine.models = [tiny]
    assert (
        window.prompt_edit.placeholderText() == "hamburger, twemoji style, on a purple background"
    )
    assert not assist.ideas_button.isHidden()
    actions = assist.ideas_menu.actions()
    assert len(actions) >= 6 and actions[0].text() == window.prompt_edit.placeholderText()
    actions[4].trigger()
    assert window.controller.generation.prompt == actions[4].text()
    assert window.prompt_edit.toPlainText() == actions[4].text()
    assert assist.hint_label.isHidden()

    window.prompt_edit.setPlainText("A lighthouse at dusk, oil painting")
    assert not assist.hint_label.isHidden()
    assert "emoji names" in assist.hint_label.text()
    window.prompt_edit.setPlainText("A lighthouse at dusk beside a rocket")
    assert assist.hint_label.isHidden()

    window.prompt_edit.setPlainText("A lighthouse at dusk, oil painting")
    engine.models = [sd15]  # a model that reads any prompt
    assert window.prompt_edit.placeholderText() == GENERAL_PLACEHOLDER
    assert assist.ideas_button.isHidden() and assist.hint_label.isHidden()


def test_prompt_box_completes_names_styles_and_colours(window, tiny, qtbot):
    window.controller.engine.models = [tiny]
    assist = window.prompt_panel.prompt_assist
    edit = window.prompt_edit
    edit.setFocus()
    qtbot.keyClicks(edit, "octo")
    popup = assist.completer.popup()
    qtbot.waitUntil(popup.isVisible, timeout=3000)
    assert popup.currentIndex().data(Qt.ItemDataRole.DisplayRole).startswith("octopus")
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    assert edit.toPlainText() == "octopus"
    assert window.controller.generation.prompt == "octopus"
    assert not popup.isVisible()

    qtbot.keyClicks(edit, ", twe")
    qtbot.waitUntil(popup.isVisible, timeout=3000)
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    qtbot.keyClicks(edit, ", on a gre")
    qtbot.waitUntil(popup.isVisible, timeout=3000)
    texts = [popup.model().index(i, 0).data() for i in range(popup.model().rowCount())]
    assert texts == ["on a green background"]  # only what continues the phrase
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    assert edit.toPlainText() == "octopus, twemoji style, on a green background"

    # Typing something it does not know offers nothing.
    qtbot.keyClicks(edit, " lighthou")
    qtbot.wait(50)
    assert not popup.isVisible()


def test_dice_button_is_a_drawn_icon_not_an_emoji(window):
    dice = window.prompt_panel.dice_button
    assert dice.text() == ""
    image = dice.icon().pixmap(32, 32).toImage()
    opaque = sum(image.pixelColor(x, y).alpha() > 128 for x in range(32) for y in range(32))
    assert 60 < opaque < 700  # an outline and pips, not empty and not a filled box


def test_model_picker_and_size_say_loading_until_the_engine_lists_models(window, tiny):
    engine = window.controller.engine
    panel = window.prompt_panel
    combo = window.model_combo
    assert combo.currentText() == "Loading models…"
    assert not panel.width_spin.isEnabled() and panel.width_spin.lineEdit().text() == ""
    assert panel.size_preset.currentIndex() == -1
    engine.connection = Connection.ready  # answering, list not there yet
    assert combo.currentText() == "Loading models…"
    engine.models_listed = True  # an answer with no models
    assert combo.currentText() == "No models found"
    assert panel.width_spin.isEnabled() and panel.width_spin.lineEdit().text() == "512 px"
    engine.connection = Connection.disconnected
    assert combo.currentText() == "Waiting for the engine…"


def test_a_size_picked_before_the_engine_answers_shows_at_once(window):
    panel = window.prompt_panel
    assert panel.size_preset.isEnabled() and panel.width_spin.text() == ""
    i = next(
        k
        for k in range(panel.size_preset.count())
        if tuple(panel.size_preset.itemData(k) or ()) == (64, 64)
    )
    panel.size_preset.setCurrentIndex(i)
    panel.size_preset.activated.emit(i)
    assert (window.controller.generation.width, window.controller.generation.height) == (64, 64)
    assert panel.width_spin.isEnabled() and panel.width_spin.text() == "64 px"
