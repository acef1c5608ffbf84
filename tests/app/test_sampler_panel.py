"""The Sampler dock, the sampler/fit state, grid choices and the canvas grid (no engine)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.controller import AppController
from app.state.canvas import CanvasState
from app.state.grid import CanvasGrid, GridChoice, parse_numbers
from app.state.sampler import FitsState, analytic_toggle, format_age, listed, resolve
from engine.protocol import (
    FitInfo,
    GenerateParams,
    GridCell,
    GridSampler,
    Job,
    JobFinished,
    JobPreview,
    JobQueued,
    JobResult,
    JobState,
    ResultImage,
    SamplerGridJob,
    SamplerGridParams,
    SamplerInfo,
    SamplerOption,
    utcnow,
)

from .test_controller import controller, png_bytes  # noqa: F401
from .test_window import window  # noqa: F401

SCHED = SamplerOption(
    name="schedule",
    label="Schedule type",
    default="default",
    choices=["default", "karras", "exponential"],
)
CAL = SamplerOption(name="calibrated", label="Calibrated", default=False)
SAMPLERS = [
    SamplerInfo(name="Euler", description="First-order ODE solver.", options=[SCHED, CAL]),
    SamplerInfo(name="DPM++ 2M", description="Multistep.", options=[SCHED, CAL]),
    SamplerInfo(
        name="DDIM",
        description="DDIM.",
        options=[
            SamplerOption(
                name="timestep_spacing",
                label="Timestep spacing",
                choices=["linspace", "leading", "trailing"],
            ),
            SamplerOption(name="eta", label="Eta DDIM", default=0.0, minimum=0, maximum=1),
            CAL,
        ],
    ),
    SamplerInfo(name="Analytic-DDIM", description="Analytic.", options=[CAL], needs_fit="analytic"),
    SamplerInfo(
        name="DPM++ 2M Karras",
        description="legacy",
        options=[SCHED, CAL],
        alias_of="DPM++ 2M",
        schedule="karras",
    ),
]


def fit(kind: str, minutes: float = 2, steps: list[int] | None = None, images: int = 500):
    return FitInfo(
        id=kind,
        kind=kind,
        model="tiny",
        model_hash="h",
        images=images,
        created_at=datetime.now(UTC) - timedelta(minutes=minutes),
        source="fitset",
        steps=steps or [],
    )


# --------------------------------------------------------------------------- state


def test_catalogue_helpers():
    assert [s.name for s in listed(SAMPLERS)] == ["Euler", "DPM++ 2M", "DDIM", "Analytic-DDIM"]
    info, implied = resolve("DPM++ 2M Karras", SAMPLERS)
    assert info.name == "DPM++ 2M" and implied == "karras"
    assert resolve("nope", SAMPLERS) == (None, None)
    assert analytic_toggle("DDIM") == (True, False, "Analytic-DDIM")
    assert analytic_toggle("Analytic-DDPM") == (True, True, "DDPM")
    assert analytic_toggle("Euler")[0] is False
    now = datetime.now(UTC)
    assert format_age(now, now) == "just now"
    assert format_age(now - timedelta(minutes=2), now) == "2 min ago"
    assert format_age(now - timedelta(days=3), now) == "3 days ago"


def test_fit_status_and_needs():
    fits = FitsState()
    fits.model = "tiny"
    analytic = SAMPLERS[3]
    assert fits.describe("calibration") == "not fitted for this model"
    needs = fits.needs(analytic, 25, None, calibrated=True)
    assert [n.kind for n in needs] == ["analytic", "calibration"]
    fits.fits = [fit("analytic", steps=[10, 25]), fit("calibration", images=500)]
    assert fits.describe("calibration") == "fitted on 500 images, 2 min ago"
    assert fits.describe("analytic").endswith("10/25 steps")
    assert fits.needs(analytic, 25, None, calibrated=True) == []
    [need] = fits.needs(analytic, 30, None, calibrated=False)
    assert "for 30 steps" in need.message


def test_grid_choice_keeps_current_options_on_its_own_row():
    assert parse_numbers("10, 20 30,20") == [10, 20, 30]
    assert parse_numbers("4; 7.5", float) == [4.0, 7.5]
    with pytest.raises(ValueError):
        parse_numbers("10, x")
    current = GenerateParams(
        prompt="p", sampler="DPM++ 2M", schedule="karras", seed=5, batch_size=4
    )
    choice = GridChoice(["DPM++ 2M", "Euler"], [10, 20])
    assert choice.cell_count == 4 and choice.problem() == ""
    grid = choice.to_params(current)
    assert grid.base.schedule == "default" and grid.base.batch_size == 1 and grid.base.seed == 5
    rows = grid.samplers
    assert rows[0].schedule == "karras" and rows[1].schedule is None
    assert GridChoice([], [10]).problem() and GridChoice(["Euler"], []).problem()
    assert "too many" in GridChoice(["a"] * 9, list(range(1, 9))).problem()


def grid_params() -> SamplerGridParams:
    return SamplerGridParams(
        base=GenerateParams(prompt="p", seed=3, width=64, height=64),
        samplers=["Euler", GridSampler(sampler="DDIM", eta=0.5)],
        steps=[2, 3],
    )


def test_canvas_grid_fills_cells_and_opens_one(qapp):
    canvas = CanvasState()
    grid = CanvasGrid("g", grid_params())
    canvas.follow_grid(grid)
    assert canvas.grid_visible and grid.row_labels == ["Euler", "DDIM · η 0.5"]
    assert grid.progress_text() == "cell 1 of 4"
    assert canvas.set_grid_preview("g", 1, png_bytes(), 1)  # cell index 1 = (0, 1)
    assert grid.slot(0, 1).image.preview
    assert not canvas.open_cell(0, 1) or canvas.current_image.preview
    canvas.show_grid()
    cell = GridCell(
        row=1, col=1, sampler="DDIM", label="DDIM · η 0.5", steps=3, cfg_scale=7, seconds=0.5
    )
    assert canvas.set_grid_result("g", cell, png_bytes(), path=Path("/x/c3.png"), seed=3)
    slot = grid.slot(1, 1)
    assert slot.seconds == 0.5 and slot.image.ready
    assert canvas.open_cell(1, 1)
    assert not canvas.grid_visible and canvas.grid is grid
    p = canvas.current_image.params
    assert (p.sampler, p.steps, p.eta, p.seed) == ("DDIM", 3, 0.5, 3)
    assert canvas.show_grid() and canvas.grid_visible


# --------------------------------------------------------------------------- controller


def grid_job(state=JobState.queued, results=()) -> Job:
    return Job(
        id="g1",
        kind="sampler_grid",
        state=state,
        created_at=utcnow(),
        spec=SamplerGridJob(params=grid_params()),
        results=list(results),
    )


async def test_grid_job_events_fill_the_canvas_grid(controller: AppController, tmp_path):  # noqa: F811
    c = controller
    c.handle_event(JobQueued(job=grid_job()))
    item = c.jobs.get("g1")
    assert item.title == "Compare: p" and item.image_count == 5
    c.handle_event(
        JobPreview(job_id="g1", step=1, index=2, width=8, height=8, png_b64="iVBORw0KGgo=")
    )
    assert c.canvas.grid is not None and c.canvas.grid_visible
    results = []
    for k in range(4):
        r, col = divmod(k, 2)
        path = tmp_path / f"c{k}.png"
        path.write_bytes(png_bytes())
        cell = GridCell(
            row=r,
            col=col,
            sampler="x",
            label="x",
            steps=2 + col,
            cfg_scale=7,
            seconds=0.1 * (k + 1),
        )
        res = ResultImage(
            name=path.name, path=str(path), index=k, seed=3, width=64, height=64, cell=cell
        )
        results.append(res)
        c.handle_event(JobResult(job_id="g1", image=res))
    sheet = tmp_path / "g1-grid.png"
    sheet.write_bytes(png_bytes())
    grid_res = ResultImage(
        name=sheet.name, path=str(sheet), index=4, seed=3, width=200, height=200, role="grid"
    )
    c.handle_event(JobResult(job_id="g1", image=grid_res))
    from .test_controller import settle

    await settle(c)
    grid = c.canvas.grid
    assert grid.complete and grid.sheet_path == sheet
    assert {e.path.name for e in c.history.index.entries()} >= {"g1-grid.png", "c0.png"}
    c.handle_event(JobFinished(job=grid_job(JobState.done, results + [grid_res])))
    await settle(c)
    assert c.canvas.grid is grid  # no reset on finish
    c.compare_jobs.open_grid_cell(1, 0)
    assert c.canvas.current_image.params.sampler == "DDIM"


# --------------------------------------------------------------------------- widgets


def test_panel_shows_only_the_options_of_the_sampler(window):  # noqa: F811
    c = window.controller
    panel = window.sampler_panel
    c.engine.samplers = SAMPLERS
    c.fits.model = "tiny"
    g = c.generation
    g.sampler = "Euler"
    assert [panel.sampler_list.item(i).text() for i in range(panel.sampler_list.count())] == [
        "Euler",
        "DPM++ 2M",
        "DDIM",
        "Analytic-DDIM",
    ]
    assert panel.schedule_combo.isVisibleTo(panel) and not panel.eta_spin.isVisibleTo(panel)
    assert not panel.analytic_toggle.isEnabled()
    panel.sampler_list.setCurrentRow(2)  # DDIM
    assert g.sampler == "DDIM"
    assert not panel.schedule_combo.isVisibleTo(panel) and panel.eta_spin.isVisibleTo(panel)
    assert panel.analytic_toggle.isEnabled() and not panel.analytic_toggle.isChecked()
    panel.eta_spin.setValue(0.3)
    assert g.option("eta") == 0.3
    panel.analytic_toggle.click()
    assert g.sampler == "Analytic-DDIM" and g.option("eta") is None
    assert panel.need_box.isVisibleTo(panel) and "noise at each step" in panel.need_label.text()
    assert "Γ_t" in panel.need_label.toolTip()  # the maths in the tooltip, words in the panel
    requested: list[str] = []
    panel.fit_requested.connect(requested.append)
    panel.need_button.click()
    assert requested == ["analytic"]
    c.fits.fits = [fit("analytic", steps=[10, 25])]
    g.steps = 25
    assert not panel.need_box.isVisibleTo(panel)
    assert panel.preset_buttons[25].isChecked()
    panel.preset_buttons[10].click()
    assert g.steps == 10 and panel.steps_slider.value() == 10


async def test_dropped_recipe_shows_its_sampler_and_options(window, tmp_path):  # noqa: F811
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from engine.protocol import recipe_json

    c = window.controller
    c.engine.samplers = SAMPLERS
    panel = window.sampler_panel
    params = GenerateParams(
        prompt="harbour",
        sampler="DPM++ 2M",
        schedule="exponential",
        steps=30,
        calibrated=True,
        seed=1,
    )
    info = PngInfo()
    info.add_text("sfumato", recipe_json(params, seed=1, model_name="tiny", index=0))
    path = tmp_path / "r.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    assert c.generate_jobs.restore_from_file(path)
    assert panel.sampler_list.currentItem().text() == "DPM++ 2M"
    assert panel.schedule_combo.currentData() == "exponential"
    assert panel.calibrated_toggle.isChecked() and panel.steps_spin.value() == 30
    assert c.generation.to_params().schedule == "exponential"
    # A1111 < 1.9 legacy name: the list shows the base sampler, the combo its schedule
    c.generation.apply(GenerateParams.from_a1111("x\nSteps: 20, Sampler: DPM++ 2M Karras, Seed: 1"))
    assert panel.sampler_list.currentItem().text() == "DPM++ 2M"
    assert panel.schedule_combo.currentData() == "karras"
    assert c.generation.to_params().sampler == "DPM++ 2M Karras"  # written back as it came


def test_prompt_dock_summarises_the_sampler_and_opens_its_panel(window, qtbot):  # noqa: F811
    c = window.controller
    c.engine.samplers = SAMPLERS
    summary = window.prompt_panel.sampler_button
    c.generation.sampler = "DDIM"
    window.sampler_panel.eta_spin.setValue(0.3)
    assert summary.text().startswith("DDIM · η 0.3")
    window.sampler_panel.calibrated_toggle.click()
    assert "calibrated" in summary.text()
    window.prompt_dock.raise_()
    # Tabified docks stay isVisible(); the one behind has nothing on screen.
    on_screen = lambda: not window.sampler_dock.visibleRegion().isEmpty()
    qtbot.waitUntil(lambda: not on_screen(), timeout=2000)
    summary.click()
    qtbot.waitUntil(on_screen, timeout=2000)


def test_compare_dialog_builds_the_choice(window):  # noqa: F811
    c = window.controller
    c.engine.samplers = SAMPLERS
    c.generation.sampler = "Euler"
    dialog = window.open_compare()
    assert dialog is not None
    dialog.set_samplers(["Euler", "DDIM"])
    dialog.steps_edit.setText("5, 10")
    dialog.cfg_edit.setText("3, 7")
    choice, problem = dialog.choice()
    assert problem == "" and choice.cell_count == 8
    assert dialog.run_button.text() == "Run 8 cells"
    dialog.steps_edit.setText("5, ten")
    assert not dialog.run_button.isEnabled() and "ten" in dialog.problem_label.text()
    items = [dialog.sampler_list.item(i) for i in range(dialog.sampler_list.count())]
    assert [i.checkState() == Qt.CheckState.Checked for i in items] == [True, False, True, False]
    dialog.reject()


async def test_panel_follows_its_fits_not_other_jobs(window, monkeypatch):  # noqa: F811
    from engine.protocol import AnalyticFitJob, GenerateJob, JobProgress, JobStarted

    c = window.controller
    panel = window.sampler_panel
    c.fits.model = "tiny"
    calls = [0]
    refresh = panel._refresh_fits

    def counted() -> None:
        calls[0] += 1
        refresh()

    monkeypatch.setattr(panel, "_refresh_fits", counted)
    gen = Job(
        id="gen",
        kind="generate",
        state=JobState.queued,
        created_at=utcnow(),
        spec=GenerateJob(params=GenerateParams(prompt="harbour", steps=30)),
    )
    c.handle_event(JobQueued(job=gen))
    c.handle_event(JobStarted(job_id="gen"))
    for step in range(1, 31):
        c.handle_event(JobProgress(job_id="gen", step=step, total=30))
    assert calls[0] == 0

    fit = Job(
        id="fit",
        kind="analytic_fit",
        state=JobState.queued,
        created_at=utcnow(),
        spec=AnalyticFitJob(),
    )
    c.handle_event(JobQueued(job=fit))
    assert calls[0] == 1 and "queued" in panel.analytic_row.status.text()
    assert not panel.analytic_row.fit_button.isEnabled()
    c.handle_event(JobStarted(job_id="fit"))
    for step in (1, 1, 2, 2, 2):  # the status line prints whole percents of 200 steps
        c.handle_event(JobProgress(job_id="fit", step=step, total=200))
    assert calls[0] == 4
    assert panel.analytic_row.status.text().startswith("Fitting… (running · 1%, see Queue)")
    c.handle_event(JobFinished(job=fit.model_copy(update={"state": JobState.done})))
    assert "Fitting" not in panel.analytic_row.status.text()
    assert panel.analytic_row.fit_button.isEnabled()


def test_the_sampler_panel_follows_the_model_family(window):  # noqa: F811
    """Only the model's family of samplers is listed; picking a model of the other family
    switches the sampler (saying so), drops what the family refuses, shows the Flow model
    controls and greys Analytic-DPM, calibration and uncertainty with the reason."""
    from engine.protocol import ModelInfo

    c = window.controller
    panel = window.sampler_panel
    flow = [
        SamplerInfo(name=n, description=f"{n} on the flow ODE.", model_family="flow")
        for n in ("Flow Euler", "Flow Heun")
    ]
    c.engine.samplers = [*SAMPLERS, *flow]
    c.engine.models = [
        ModelInfo(id="tiny", name="Tiny", format="diffusers", path="/m/tiny", architecture="sd1"),
        ModelInfo(id="flux", name="Flux", format="diffusers", path="/m/flux", architecture="flux"),
        ModelInfo(
            id="sd3",
            name="SD3",
            format="single_file",
            path="/m/sd3.safetensors",
            architecture="sd3",
        ),
    ]
    g = c.generation

    def shown() -> list[str]:
        items = [panel.sampler_list.item(i) for i in range(panel.sampler_list.count())]
        return [it.text() for it in items if not it.isHidden()]

    g.model = "tiny"
    g.sampler = "Euler"
    g.set_option("calibrated", True)
    assert shown() == ["Euler", "DPM++ 2M", "DDIM", "Analytic-DDIM"]
    assert not panel.flow_title.isVisibleTo(panel)
    assert panel.calibrated_toggle.isEnabled()

    g.model = "flux"
    assert shown() == ["Flow Euler", "Flow Heun"]
    assert g.sampler == "Flow Euler" and g.option("calibrated") is None
    note = panel.switch_note.text()
    assert panel.switch_note.isVisibleTo(panel)
    assert "Euler does not sample flux models" in note and "switched to Flow Euler" in note
    assert "Turned off calibration" in note
    assert panel.flow_title.isVisibleTo(panel) and panel.guidance_spin.isVisibleTo(panel)
    for row in (panel.analytic_row, panel.calibration_row):
        assert not row.toggle.isEnabled() and not row.fit_button.isEnabled()
        assert "ε-prediction" in row.status.text()
    assert not window.uncertainty_panel.enable_toggle.isEnabled()
    unc = window.uncertainty_panel
    assert "ε-prediction" in unc.sampler_warning.text()
    assert not unc.use_ddim_button.isVisibleTo(unc) and not unc.fit_row.fit_button.isEnabled()

    # Compare… offers the flow samplers only
    g.prompt = "a cat"
    dialog = window.open_compare()
    assert [dialog.sampler_list.item(i).text() for i in range(dialog.sampler_list.count())] == [
        "Flow Euler",
        "Flow Heun",
    ]
    dialog.reject()

    # Distilled CFG and Shift write the recipe's flow group
    panel.guidance_spin.setValue(4.5)
    panel.shift_spin.setValue(1.5)
    assert g.to_params().flow.guidance == 4.5 and g.to_params().flow.shift == 1.5
    panel.guidance_spin.setValue(0.0)  # back to the default
    assert g.to_params().flow.guidance is None

    # SD3: no distilled guidance row; a recipe's "Euler" (A1111/Forge text) maps to Flow Euler
    g.model = "sd3"
    assert panel.shift_spin.isVisibleTo(panel) and not panel.guidance_spin.isVisibleTo(panel)
    g.sampler = "Euler"
    assert g.sampler == "Flow Euler" and "Euler does not sample sd3" in panel.switch_note.text()
    panel.sampler_list.setCurrentRow(shown().index("Flow Heun") + 4)  # the user picks: no note
    assert g.sampler == "Flow Heun" and not panel.switch_note.isVisibleTo(panel)

    # back to SD: Flow Heun -> Heun is not offered here, so the first of the family; flow dropped
    g.model = "tiny"
    assert g.sampler == "Euler" and g.option("flow") is None
    assert "Turned off the flow options" in panel.switch_note.text()
    assert panel.calibrated_toggle.isEnabled()


def test_analytic_dpm_and_calibration_are_greyed_on_sdxl_with_the_reason(window):  # noqa: F811
    """The methods a model lacks (ModelInfo.methods, engine/architecture.py) grey their toggles:
    SDXL keeps its samplers but has no fits yet, and the tooltip says why."""
    from app.ui.sampler_dock import DIM_ROLE, TAG_ROLE
    from engine.protocol import ModelInfo

    c = window.controller
    panel = window.sampler_panel
    c.engine.samplers = list(SAMPLERS)
    c.engine.models = [
        ModelInfo(id="tiny", name="Tiny", format="diffusers", path="/m/tiny", architecture="sd1"),
        ModelInfo(
            id="xl", name="XL", format="single_file", path="/m/xl.safetensors", architecture="sdxl"
        ),
    ]
    g = c.generation
    g.model = "xl"
    for row in (panel.analytic_row, panel.calibration_row):
        assert not row.toggle.isEnabled() and not row.fit_button.isEnabled()
        assert row.status.text() == "Not for Stable Diffusion XL yet: written for SD 1.x/2.x."
        assert "SDXL's second encoder" in row.toggle.toolTip()
    analytic = next(
        panel.sampler_list.item(i)
        for i in range(panel.sampler_list.count())
        if panel.sampler_list.item(i).text() == "Analytic-DDIM"
    )
    assert analytic.data(TAG_ROLE) == "no fits (SDXL)" and analytic.data(DIM_ROLE)
    assert "Analytic-DPM is not available for sdxl models" in analytic.toolTip()
    g.model = "tiny"
    assert analytic.data(TAG_ROLE) == "needs fit" and not analytic.data(DIM_ROLE)
    assert panel.calibrated_toggle.isEnabled()
