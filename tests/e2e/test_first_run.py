"""First run from the window: the dialog's check generates an image with the embedded model
through the real engine and shows it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from app.main import create_window, parse_args
from app.model_check import CHECK_PROMPT, EMBEDDED_MODEL
from app.state.settings import DARK, LIGHT
from app.ui.icons import app_icon
from app.ui.theme import apply_theme
from tests.e2e.conftest import until

pytestmark = pytest.mark.slow


async def test_first_run_check_shows_an_image_from_the_embedded_model(qtbot, tmp_path: Path):
    controller, window = create_window(parse_args(["--data-dir", str(tmp_path / "data")]))
    qtbot.addWidget(window)
    shots = os.environ.get("SFUMATO_SHOTS")  # docs: xvfb-run … SFUMATO_SHOTS=docs pytest
    if shots:
        QApplication.instance().setWindowIcon(app_icon())
        apply_theme(QApplication.instance(), DARK)
        window.resize(1280, 800)
    window.show()
    # Before the engine answers: no "No models found", no default size about to change.
    assert window.model_combo.currentText() == "Loading models…"
    assert window.prompt_panel.width_spin.text() == ""
    try:
        await controller.start()
        await until(lambda: controller.engine.models_listed, 60, "the model list")
        # The built-in model is active: the prompt box offers what it knows (from the
        # vocabulary.json the engine lists with it).
        tiny = next(m for m in controller.engine.models if m.id == EMBEDDED_MODEL)
        assert tiny.vocabulary is not None and len(tiny.vocabulary.subjects) == 243
        assist = window.prompt_panel.prompt_assist
        assert window.prompt_edit.placeholderText() == tiny.vocabulary.examples[0]
        assert not assist.ideas_button.isHidden()
        assert window.prompt_panel.width_spin.text() == "64 px"
        dialog = window.desktop.show_first_run()
        # The dialog loads the built-in model while it is read: the check then only generates.
        await until(lambda: controller.engine.loaded_model is not None, 240, "the preloaded model")
        assert controller.engine.loaded_model.id == EMBEDDED_MODEL
        seen: list[str] = []
        show = dialog.show_progress
        dialog.show_progress = lambda text: (seen.append(text), show(text))[-1]
        qtbot.mouseClick(dialog.check_button, Qt.MouseButton.LeftButton)
        await until(
            lambda: (
                dialog.check_button.isEnabled()
                and "Works" in dialog.check_result.text()
                or "Not working" in dialog.check_result.text()
            ),
            240,
            "the check to finish",
        )
        assert "Works." in dialog.check_result.text(), dialog.check_result.text()
        assert EMBEDDED_MODEL in dialog.check_result.text()
        assert "one image in" in dialog.check_result.text()
        assert any(t.startswith("Generating the test image: step") for t in seen), seen
        pixmap = dialog.check_image.pixmap()
        assert not pixmap.isNull() and pixmap.width() == 128
        image = pixmap.toImage()
        colours = {image.pixel(x, y) for x in range(0, 128, 8) for y in range(0, 128, 8)}
        assert len(colours) > 10  # a picture, not a flat fill
        # the check went through the queue like any job: it is in the history with its recipe
        await until(lambda: len(controller.history.index.entries()) >= 1, 30, "history")
        assert controller.history.index.entries()[0].params.prompt == CHECK_PROMPT
        if shots:
            await _screenshots(window, dialog, Path(shots))
        dialog.accept()
        assert controller.settings.first_run_done
    finally:
        await controller.shutdown()


async def _screenshots(window, dialog, out: Path) -> None:
    """The first-run dialog after its check, and the window in both themes (docs/)."""
    app = QApplication.instance()
    await asyncio.sleep(0.3)
    dialog.grab().save(str(out / "first-run.png"))
    dialog.hide()
    await until(lambda: window.canvas.view.has_image, 30, "the check image on the canvas")
    for scheme in (DARK, LIGHT):
        apply_theme(app, scheme)
        await asyncio.sleep(0.5)
        window.grab().save(str(out / f"window-{scheme}.png"))
    apply_theme(app, DARK)


async def test_packaged_first_run_choosing_an_engine_python_makes_it_work(
    qtbot, tmp_path: Path, monkeypatch
):
    """As in the packaged app: no engine until the user picks a Python in the dialog; the
    check then starts the engine with it and generates."""
    import sys

    monkeypatch.delenv("SFUMATO_ENGINE_CMD", raising=False)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    controller, window = create_window(parse_args(["--data-dir", str(tmp_path / "data")]))
    qtbot.addWidget(window)
    window.show()
    try:
        await controller.start()
        assert controller.local is None and "First-run setup" in controller.engine.detail
        dialog = window.desktop.show_first_run()
        dialog.python_edit.setText(sys.executable)
        await dialog.run_check()
        assert "Works." in dialog.check_result.text(), dialog.check_result.text()
        assert controller.settings.engine_python == sys.executable
        assert controller.local is not None and controller.local.launch.command[0] == sys.executable
        dialog.accept()
    finally:
        await controller.shutdown()
