"""A person picks a Flux model in the window, a flow sampler, and generates; and a single-file
Flux (transformer file + ae/clip_l/t5xxl beside it, as ComfyUI users keep them) with the
Sampler panel switching to Flow Euler by itself and the Flow model controls set."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import Qt

from engine.protocol import recipe_from_png_text
from tests.e2e.conftest import _open_studio, until

pytestmark = pytest.mark.slow


@pytest.fixture
async def flow_studio(qtbot, tmp_path: Path):
    from tests.support.flow_export import export_flux
    from tests.support.tiny_flow import build_tiny_flux
    from tests.support.tiny_sd import build_tiny_sd

    models = tmp_path / "models"
    build_tiny_sd(models / "tiny-sd")
    build_tiny_flux(models / "tiny-flux")
    export_flux(models / "tiny-flux", models, name="flux-single")
    window = await _open_studio(
        qtbot,
        ["--data-dir", str(tmp_path / "data"), "--models-dir", str(models), "--model", "tiny-sd"],
    )
    yield window
    await window.controller.shutdown()


async def test_pick_flux_and_a_flow_sampler_and_generate(flow_studio, qtbot):
    window = flow_studio
    c = window.controller
    await until(lambda: window.model_bar.combo.findData("tiny-flux") >= 0, 30, "the model list")
    window.model_bar.select("tiny-flux")
    qtbot.mouseClick(window.model_bar.load_button, Qt.MouseButton.LeftButton)
    await until(
        lambda: (m := c.engine.loaded_model) is not None and m.id == "tiny-flux",
        120,
        "tiny-flux to load",
    )
    panel = window.sampler_panel
    names = [panel.sampler_list.item(i).text() for i in range(panel.sampler_list.count())]
    panel.sampler_list.setCurrentRow(names.index("Flow Euler"))
    assert c.generation.sampler == "Flow Euler"
    g = c.generation
    g.set_size(32, 32)
    g.steps = 2
    g.seed = 5
    window.prompt_edit.setPlainText("a red cat")
    waiting = window.canvas.wait_for_image(120)
    qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    shown = Path(await waiting)
    image = Image.open(shown)
    assert image.size == (32, 32)
    recipe = recipe_from_png_text(image.text)
    assert recipe.model == "tiny-flux" and recipe.sampler == "Flow Euler"


async def test_a_single_file_flux_switches_the_sampler_and_takes_the_flow_controls(
    flow_studio, qtbot
):
    window = flow_studio
    c = window.controller
    panel = window.sampler_panel
    await until(lambda: window.model_bar.combo.findData("flux-single") >= 0, 30, "the model list")
    await until(
        lambda: c.generation.sampler in {s.name for s in c.engine.samplers}, 30, "the sampler list"
    )
    assert c.generation.sampler == "Euler a"  # the built-in model's default on tiny-sd
    window.model_bar.select("flux-single")
    qtbot.mouseClick(window.model_bar.load_button, Qt.MouseButton.LeftButton)
    await until(
        lambda: (m := c.engine.loaded_model) is not None and m.id == "flux-single",
        120,
        "flux-single to load",
    )
    await until(lambda: c.generation.sampler == "Flow Euler", 10, "the sampler switch")
    assert panel.switch_note.isVisibleTo(panel)
    assert "switched to Flow Euler" in panel.switch_note.text()
    visible = [
        panel.sampler_list.item(i).text()
        for i in range(panel.sampler_list.count())
        if not panel.sampler_list.item(i).isHidden()
    ]
    assert visible and all(name.startswith("Flow ") for name in visible)
    assert panel.guidance_spin.isVisibleTo(panel)
    panel.guidance_spin.setValue(4.0)
    panel.shift_spin.setValue(2.0)
    g = c.generation
    g.set_size(32, 32)
    g.steps = 2
    g.seed = 9
    window.prompt_edit.setPlainText("a red cat")
    waiting = window.canvas.wait_for_image(120)
    qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    image = Image.open(Path(await waiting))
    recipe = recipe_from_png_text(image.text)
    assert recipe.model == "flux-single" and recipe.sampler == "Flow Euler"
    assert recipe.flow is not None and (recipe.flow.guidance, recipe.flow.shift) == (4.0, 2.0)
    assert "Distilled CFG Scale: 4" in image.text["parameters"]
