"""Analytic-DPM from the window on the built-in model: pick DDIM, turn Analytic on, the panel
says a fit is needed, "Fit now" fits Γ on the model's shipped fit set, then Generate works."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from tests.e2e.conftest import until

pytestmark = pytest.mark.slow


async def test_fit_now_then_generate_with_analytic_ddim(builtin_studio, qtbot):
    window = builtin_studio
    c = window.controller
    panel = window.sampler_panel
    await until(
        lambda: len(c.engine.samplers) > 0 and c.fits.model == "sfumato-tiny",
        60,
        "the samplers and the built-in model's fits",
    )
    window.sampler_dock.raise_()
    g = c.generation
    g.prompt, g.seed, g.steps = "rocket, twemoji style, on a blue background", 7, 10
    g.sampler = "DDIM"
    panel.analytic_toggle.click()
    assert g.sampler == "Analytic-DDIM"
    await until(lambda: panel.need_box.isVisibleTo(panel), 5, "the 'needs a fit' notice")
    assert "noise at each step" in panel.need_label.text() and "Γ_t" in panel.need_label.toolTip()

    qtbot.mouseClick(panel.need_button, Qt.MouseButton.LeftButton)
    await until(lambda: c.jobs.active_fit("analytic") is not None, 10, "the fit job queued")
    await until(lambda: c.fits.latest("analytic") is not None, 600, "the analytic fit")
    fit = c.fits.latest("analytic")
    assert fit.source == "fitset" and fit.images > 0 and 10 in fit.steps
    assert "fitted on" in panel.analytic_row.status.text().lower()
    assert not panel.need_box.isVisibleTo(panel)

    qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    await until(
        lambda: (
            c.canvas.current_image is not None
            and c.canvas.current_image.ready
            and not c.canvas.current_image.preview
        ),
        120,
        "the Analytic-DDIM image",
    )
    image = c.canvas.current_image
    assert image.params.sampler == "Analytic-DDIM" and image.params.steps == 10
