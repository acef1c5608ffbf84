"""Uncertainty from the window on the built-in model: turn it on, fit the posterior, generate a
batch with DDIM, see the heatmap over the image, sort the batch and keep the most certain."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from tests.e2e.conftest import until

pytestmark = pytest.mark.slow


async def test_generate_with_uncertainty_see_the_map_and_rank_the_batch(builtin_studio, qtbot):
    window = builtin_studio
    c = window.controller
    panel = window.uncertainty_panel
    await until(
        lambda: len(c.engine.samplers) > 0 and c.fits.model == "sfumato-tiny",
        60,
        "the samplers and the built-in model's fits",
    )
    window.uncertainty_dock.raise_()
    g = c.generation
    g.prompt, g.seed, g.steps, g.batch_size = (
        "red apple, noto style, on a white background",
        3,
        8,
        4,
    )
    g.sampler = "Euler a"
    qtbot.mouseClick(panel.enable_toggle, Qt.MouseButton.LeftButton)
    assert g.to_params().uncertainty
    await until(lambda: panel.warning_box.isVisibleTo(panel), 5, "the sampler warning")
    qtbot.mouseClick(panel.use_ddim_button, Qt.MouseButton.LeftButton)
    assert g.sampler == "DDIM"

    if c.fits.latest("uncertainty") is None:
        qtbot.mouseClick(panel.fit_row.fit_button, Qt.MouseButton.LeftButton)
        await until(lambda: c.fits.latest("uncertainty") is not None, 600, "the posterior fit")
    assert "fitted on" in panel.fit_row.status.text().lower()

    qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    await until(
        lambda: (
            len(c.canvas.images) == 4
            and all(im.ready and im.uncertainty is not None for im in c.canvas.images)
        ),
        300,
        "four images with their maps",
    )
    images = list(c.canvas.images)
    for im in images:
        assert im.path is not None and im.path.with_suffix(".uncertainty.npy").is_file()
        values = np.load(im.path.with_suffix(".uncertainty.npy"))
        assert values.shape == (64, 64) and np.isfinite(values).all() and values.min() >= 0
        # The score is BayesDiff's own by default (the final latent's variance, summed;
        # docs/uncertainty.md), not the pixel map's mean: positive, finite, and far larger.
        assert np.isfinite(im.score) and im.score > float(values.mean()) > 0
    await until(lambda: window.canvas.view.heatmap_shown, 5, "the heatmap on the canvas")
    assert window.canvas.legend.isVisible()
    assert "uncertainty" in window.canvas.caption.text()

    if shots := os.environ.get("SFUMATO_SHOTS"):  # docs: xvfb-run … SFUMATO_SHOTS=docs pytest
        from PySide6.QtWidgets import QApplication

        from app.ui.theme import apply_theme

        apply_theme(QApplication.instance())
        await asyncio.sleep(0.3)
        window.grab().save(str(Path(shots) / "uncertainty-panel.png"))

    await until(lambda: panel.sort_button.isEnabled(), 5, "ranking enabled")
    qtbot.mouseClick(panel.sort_button, Qt.MouseButton.LeftButton)
    scores = [im.score for im in c.canvas.images]
    assert scores == sorted(scores)
    panel.keep_spin.setValue(2)
    qtbot.mouseClick(panel.keep_button, Qt.MouseButton.LeftButton)
    assert len(c.canvas.images) == 2 and window.canvas.strip.count() == 2
    assert [im.score for im in c.canvas.images] == scores[:2]
    qtbot.mouseClick(panel.show_all_button, Qt.MouseButton.LeftButton)
    assert len(c.canvas.images) == 4
