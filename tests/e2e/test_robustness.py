"""The Robustness panel, end to end: probe a prompt from the window on the built-in model."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from tests.e2e.conftest import until

pytestmark = pytest.mark.slow


@pytest.mark.timeout(900)
async def test_probe_from_the_panel_ranks_words_and_offers_wordings(builtin_studio, qtbot):
    window = builtin_studio
    c = window.controller
    g = c.generation
    g.set_size(64, 64)
    g.steps, g.seed, g.sampler = 4, 77, "DDIM"
    window.prompt_edit.setPlainText("red apple")
    panel = window.robustness_panel
    window.robustness_dock.show()
    window.robustness_dock.raise_()
    panel.samples_spin.setValue(3)
    panel.top_k_spin.setValue(1)
    panel.rule_boxes["phonetic"].setChecked(False)
    assert c.robustness.rules == ["typo", "glyph"]
    # The cost is said before it runs: 1 + 2 deletions + 1 word × 2 rules = 5 groups of 3.
    assert panel.cost_label.text().startswith("Up to 15 images of 4 steps")
    assert [panel.chips.itemAt(i).widget().text() for i in range(panel.chips.count())] == [
        "red",
        "apple",
    ]

    qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    await until(lambda: c.robustness.status == "running", 120, "the probe to start")
    assert panel.cancel_button.isVisible() and not panel.run_button.isEnabled()
    await until(lambda: c.robustness.status == "done", 800, "the probe to finish")
    report = c.robustness.report
    assert report is not None and report.done and len(report.perturbations) == 2
    await until(lambda: len(c.robustness.images) == 15, 60, "every image fetched")

    # Chips shaded by importance, with the numbers in their tooltips.
    chips = [panel.chips.itemAt(i).widget() for i in range(panel.chips.count())]
    assert all("MMD²" in chip.toolTip() for chip in chips)
    assert chips[0].styleSheet() != chips[1].styleSheet()
    # One row per perturbation with its verdict and its three images.
    assert len(panel.rows) == 2
    for row, pert in zip(panel.rows, report.perturbations, strict=True):
        assert "MMD²" in row.verdict.text() and "p =" in row.verdict.text()
        assert (
            sum(1 for lab in row.thumbs.labels if lab.pixmap() and not lab.pixmap().isNull()) == 3
        )
        assert pert.replaced in row.title.text()
    assert "most robust" in "".join(r.title.text() for r in panel.rows)
    # The probe's images stay out of the canvas and the history.
    assert not any(
        "apple" in (e.params.prompt if e.params else "") for e in c.history.index.entries()
    )

    best = report.most_robust()
    row = next(r for r in panel.rows if r.pert.group == best.group)
    qtbot.mouseClick(row.use_button, Qt.MouseButton.LeftButton)
    assert g.prompt == best.prompt
    assert window.prompt_edit.toPlainText() == best.prompt
