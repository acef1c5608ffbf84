"""Comparing samplers from the window: Compare… → a labelled grid → open a cell → its recipe."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.recipe import recipe_from_file
from tests.e2e.conftest import until

pytestmark = pytest.mark.slow


async def test_compare_two_samplers_by_two_step_counts(studio, qtbot):
    window = studio
    c = window.controller
    g = c.generation
    g.set_size(64, 64)
    g.seed = 4242
    g.prompt = "a red square"
    g.sampler = "Euler"
    window.sampler_dock.raise_()
    # "ready" can come (engine status event) before the first sync has read the samplers.
    await until(lambda: len(c.engine.samplers) > 0, 30, "the sampler list")

    qtbot.mouseClick(window.sampler_panel.compare_button, Qt.MouseButton.LeftButton)
    dialog = window.compare_dialog
    dialog.set_samplers(["Euler", "DDIM"])
    dialog.steps_edit.setText("2, 3")
    assert dialog.choice()[1] == "", dialog.choice()
    assert dialog.run_button.isEnabled() and dialog.run_button.text() == "Run 4 cells"
    qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)

    await until(lambda: c.canvas.grid is not None, 60, "the grid on the canvas")
    grid = c.canvas.grid
    assert grid.row_labels == ["Euler", "DDIM"] and grid.col_labels == ["2 steps", "3 steps"]
    assert window.canvas.grid_view.isVisible()
    await until(lambda: grid.complete and grid.sheet_path is not None, 240, "all cells + sheet")
    assert all(s.seconds is not None and s.seconds > 0 for s in grid.slots.values())
    assert "4 cells" in window.canvas.caption.text()
    if shots := os.environ.get("SFUMATO_SHOTS"):  # docs: xvfb-run … SFUMATO_SHOTS=docs pytest
        from PySide6.QtWidgets import QApplication

        from app.ui.theme import apply_theme

        apply_theme(QApplication.instance())
        await asyncio.sleep(0.3)
        window.grab().save(str(Path(shots) / "sampler-grid.png"))

    # click the DDIM × 3 steps cell
    rect = window.canvas.grid_view.cell_rects()[(1, 1)]
    qtbot.mouseClick(window.canvas.grid_view, Qt.MouseButton.LeftButton, pos=rect.center())
    await until(lambda: c.canvas.current_image is not None, 10, "the cell to open")
    image = c.canvas.current_image
    assert image.params.sampler == "DDIM" and image.params.steps == 3 and image.seed == 4242
    saved = recipe_from_file(image.path)
    assert (saved.sampler, saved.steps, saved.seed, saved.prompt) == (
        "DDIM",
        3,
        4242,
        "a red square",
    )
    assert window.canvas.view.isVisible() and window.canvas.back_button.isVisible()

    # "Use these settings" puts the cell's recipe into the panels
    g.sampler, g.steps = "Euler", 25
    qtbot.mouseClick(window.canvas.use_button, Qt.MouseButton.LeftButton)
    assert (g.sampler, g.steps, g.seed) == ("DDIM", 3, 4242)
    assert window.sampler_panel.sampler_list.currentItem().text() == "DDIM"

    # the assembled grid PNG is in the history
    await until(
        lambda: any(Path(e.path) == grid.sheet_path for e in c.history.index.entries()),
        10,
        "the grid PNG in the history",
    )
    qtbot.mouseClick(window.canvas.back_button, Qt.MouseButton.LeftButton)
    assert window.canvas.grid_view.isVisible()

    # Later, from the History: the grid PNG opens as a grid again, its cells clickable.
    sheet = next(e for e in c.history.index.entries() if Path(e.path) == grid.sheet_path)
    c.results.open_history(sheet)
    await until(
        lambda: (
            c.canvas.grid is not None
            and c.canvas.grid.job_id == f"file:{sheet.path}"
            and c.canvas.grid.complete
        ),
        10,
        "the saved grid reopened with its cells",
    )
    reopened = c.canvas.grid
    assert reopened.row_labels == ["Euler", "DDIM"]
    assert [reopened.slot(r, k).seconds for r in (0, 1) for k in (0, 1)] == [
        grid.slot(r, k).seconds for r in (0, 1) for k in (0, 1)
    ]
    await until(lambda: window.canvas.grid_view.isVisible(), 5, "the grid view")
    rect = window.canvas.grid_view.cell_rects()[(0, 1)]
    qtbot.mouseClick(window.canvas.grid_view, Qt.MouseButton.LeftButton, pos=rect.center())
    await until(
        lambda: (
            c.canvas.current_image is not None and c.canvas.current_image.params.sampler == "Euler"
        ),
        10,
        "the reopened cell",
    )
    assert c.canvas.current_image.params.steps == 3 and c.canvas.current_image.seed == 4242
