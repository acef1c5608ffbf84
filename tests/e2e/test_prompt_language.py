"""A person writes a weighted prompt with a LoRA tag (typed with its completion) on the
built-in model, sees the tokens counted and the tag highlighted, and gets the image and its
recipe with the LoRA's hash."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import Qt

from engine.models.registry import RESOURCES
from engine.protocol import recipe_from_png_text
from tests.e2e.conftest import _open_studio, until

pytestmark = pytest.mark.slow


@pytest.fixture
async def studio_with_lora(qtbot, tmp_path: Path):
    from diffusers import StableDiffusionPipeline

    from tests.support.loras import write_kohya_lora

    models = tmp_path / "models"
    pipe = StableDiffusionPipeline.from_pretrained(
        RESOURCES / "models" / "sfumato-tiny", local_files_only=True
    )
    write_kohya_lora(pipe, models / "loras" / "ink.safetensors")
    window = await _open_studio(
        qtbot,
        [
            "--data-dir",
            str(tmp_path / "data"),
            "--models-dir",
            str(models),
            "--model",
            "sfumato-tiny",
        ],
    )
    yield window
    await window.controller.shutdown()


async def test_weighted_prompt_with_a_lora_tag(studio_with_lora, qtbot):
    window = studio_with_lora
    c = window.controller
    tools = window.prompt_panel.prompt_tools
    await until(lambda: [x.name for x in c.prompt_tools.loras] == ["ink"], 30, "the LoRA list")
    g = c.generation
    g.set_size(64, 64)
    g.steps, g.seed = 4, 77

    edit = window.prompt_edit
    edit.setFocus()
    qtbot.keyClicks(edit, "a (red:1.3) apple BREAK on a table <lora:in")
    popup = tools.completer.popup()
    await until(popup.isVisible, 10, "the LoRA completion")
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    await until(lambda: edit.toPlainText().endswith("<lora:ink:1>"), 10, "the completed tag")
    assert g.prompt == "a (red:1.3) apple BREAK on a table <lora:ink:1>"
    # counted by the engine: BREAK fills the first chunk; the tag is not text
    await until(lambda: tools.prompt_tokens.text() == "81 / 150", 20, "the token count")

    layout = edit.document().firstBlock().layout()
    colours = {f.format.foreground().color().name() for f in layout.formats()}
    assert {"#1f9e8f", "#c2408f", "#d08a1a"} <= colours  # LoRA tag, BREAK, weight

    waiting = window.canvas.wait_for_image(180)
    qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    shown = Path(await waiting)
    recipe = recipe_from_png_text(Image.open(shown).text)
    assert recipe.prompt == "a (red:1.3) apple BREAK on a table <lora:ink:1>"
    assert recipe.lora_hashes.startswith("ink: ")
    assert "Lora hashes" in Image.open(shown).text["parameters"]
