"""Every catalogue entry renders on a real (tiny, random) SD pipeline in-process, fits run and
are used, and recipes round-trip through PNG metadata with their sampler and options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import EngineError
from engine.protocol import (
    AnalyticFitJob,
    CalibrationFitJob,
    GenerateParams,
    SamplerGridJob,
    recipe_from_png_text,
)
from engine.samplers import CATALOGUE, LEGACY_NAMES, check_options, sampler_infos
from tests.support.job_context import InProcessContext, make_job


@pytest.fixture(scope="module")
def loaded(tiny_models_dir):
    from engine.models.loader import ModelManager
    from engine.models.registry import ModelRegistry

    info = ModelRegistry([tiny_models_dir]).get("tiny-sd")
    return ModelManager("cpu").load(info)


@pytest.fixture(scope="module")
def fit_images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fitimages")
    rng = np.random.default_rng(0)
    for i in range(8):
        colour = rng.integers(0, 255, 3)
        img = np.tile(colour, (64, 64, 1)).astype(np.uint8)
        img[16:48, 16:48] = 255 - colour
        Image.fromarray(img).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text(f"square {i}")
    return folder


@pytest.fixture(scope="module")
def fits(loaded, fit_images, tmp_path_factory):
    """A fit store holding an analytic fit for 4 and 6 steps and a calibration fit."""
    from engine.fit_jobs import run_analytic_fit, run_calibration_fit
    from engine.fits import FitStore

    store = FitStore(tmp_path_factory.mktemp("fits"))
    data = {"source": "folder", "folder": str(fit_images), "count": 8}
    for spec, run in (
        (AnalyticFitJob(params={"steps": [4, 6], "data": data}), run_analytic_fit),
        (CalibrationFitJob(params={"timesteps": 5, "data": data}), run_calibration_fit),
    ):
        job = make_job(spec)
        ctx = InProcessContext(loaded, job, tmp_path_factory.mktemp("out"))
        run(job, ctx, fits=store)
        assert job.fit is not None and job.fit.images == 8 and job.step == job.total
    return store


def test_fits_are_listed_per_model_hash(loaded, fits):
    model_hash = fits.model_hash(loaded.info)
    assert len(model_hash) == 64 and fits.model_hash(loaded.info) == model_hash  # memoised
    listed = fits.list(model_hash)
    assert {f.kind for f in listed} == {"analytic", "calibration"}
    analytic = next(f for f in listed if f.kind == "analytic")
    assert analytic.steps == [4, 6] and analytic.source.startswith("folder:")
    gammas, data_range = fits.gammas(model_hash)
    assert all(0 < g < 2 for g in gammas.values()) and data_range > 0
    table = fits.calibration(model_hash)
    assert table.mean_cond.shape == (5, 4) and not table.mean_cond.equal(table.mean_uncond)


def render(loaded, fits, **params):
    import torch

    from engine.sampling import prepare

    p = GenerateParams(
        prompt="a red square", width=64, height=64, steps=4, cfg_scale=5.0, seed=3, **params
    )
    setup = prepare(loaded, p, fits)
    loaded.pipe.scheduler = setup.scheduler
    with setup.context(loaded.pipe, p.cfg_scale):
        out = loaded.pipe(
            prompt=p.prompt,
            width=64,
            height=64,
            num_inference_steps=p.steps,
            guidance_scale=p.cfg_scale,
            output_type="np",
            generator=[torch.Generator().manual_seed(3)],
            **setup.call_kwargs,
        )
    return out.images[0]


# on the SD model: the flow samplers render on SD3/Flux in tests/engine/test_flow_models.py
@pytest.mark.parametrize("name", [n for n, s in CATALOGUE.items() if s.model_family == "diffusion"])
def test_every_sampler_renders_a_finite_non_blank_image(loaded, fits, name):
    image = render(loaded, fits, sampler=name)
    assert np.isfinite(image).all() and image.std() > 0.01


@pytest.mark.parametrize(
    "options",
    [
        {"sampler": "DPM++ 2M", "schedule": "karras"},
        {"sampler": "DPM++ 2M Karras"},
        {"sampler": "Euler", "schedule": "exponential", "timestep_spacing": "trailing"},
        {"sampler": "LMS", "schedule": "beta"},
        {"sampler": "DDIM", "eta": 0.5},
        {"sampler": "UniPC", "solver_order": 3},
        {"sampler": "SA-Solver", "eta": 0.5, "solver_order": 2},
        {"sampler": "DPM++ 2M", "calibrated": True},
        {"sampler": "Analytic-DDIM", "calibrated": True, "steps": 6},
    ],
)
def test_options_render(loaded, fits, options):
    steps = options.pop("steps", 4)
    image = render(loaded, fits, **options) if steps == 4 else None
    if image is None:
        from engine.sampling import prepare

        prepare(loaded, GenerateParams(steps=steps, **options), fits)  # the fit covers 6 steps
    else:
        assert np.isfinite(image).all()


def test_calibration_changes_the_image(loaded, fits):
    plain = render(loaded, fits, sampler="DDIM")
    calibrated = render(loaded, fits, sampler="DDIM", calibrated=True)
    assert not np.allclose(plain, calibrated)


def test_missing_fits_say_which_job_to_run(loaded, fits, tmp_path):
    from engine.fits import FitStore
    from engine.sampling import prepare

    with pytest.raises(EngineError, match="analytic_fit") as err:
        prepare(loaded, GenerateParams(sampler="Analytic-DDPM", steps=5), fits)
    assert err.value.field == "params.sampler"
    with pytest.raises(EngineError, match="calibration_fit"):
        prepare(loaded, GenerateParams(calibrated=True), FitStore(tmp_path))


def test_options_that_do_not_apply_are_refused():
    assert check_options(GenerateParams(sampler="DDIM", schedule="karras"))[0][0] == "schedule"
    assert check_options(GenerateParams(sampler="Euler", eta=0.3))[0][0] == "eta"
    assert check_options(GenerateParams(sampler="DPM++ 2M", solver_order=3))[0][0] == "solver_order"
    assert (
        check_options(GenerateParams(sampler="DPM++ 2M Karras", schedule="beta"))[0][0] == "sampler"
    )
    assert check_options(GenerateParams(sampler="Nope"))[0][0] == "sampler"
    assert check_options(GenerateParams(sampler="k_dpmpp_2m")) == []


def test_sampler_infos_list_options_and_aliases():
    infos = {i.name: i for i in sampler_infos()}
    assert set(CATALOGUE) <= set(infos) and set(LEGACY_NAMES) <= set(infos)
    assert infos["DPM++ 2M Karras"].alias_of == "DPM++ 2M"
    options = {o.name: o for o in infos["DPM++ 2M"].options}
    assert options["schedule"].choices == ["default", "karras", "exponential", "beta"]
    assert "eta" not in options and "calibrated" in options
    assert {o.name: o for o in infos["DDIM"].options}["eta"].label == "Eta DDIM"
    assert infos["Analytic-DDPM"].needs_fit == "analytic"
    for required in (
        "DDIM",
        "DDPM",
        "PLMS",
        "LMS",
        "Euler",
        "Euler a",
        "Heun",
        "DPM2",
        "DPM2 a",
        "DPM++ 2M",
        "DPM++ 2M SDE",
        "DPM++ SDE",
        "DPM++ 2S a",
        "DPM++ 3M SDE",
        "UniPC",
        "DEIS",
        "SA-Solver",
        "LCM",
        "TCD",
    ):
        assert required in infos


@pytest.mark.parametrize(
    "params",
    [
        GenerateParams(sampler="DPM++ 2M", schedule="karras"),
        GenerateParams(sampler="DPM++ 2M Karras"),  # A1111 < 1.9 spelling stays as written
        GenerateParams(sampler="DDIM", eta=0.3, timestep_spacing="trailing"),
        GenerateParams(sampler="UniPC", solver_order=3, calibrated=True),
        GenerateParams(sampler="SA-Solver", eta=0.7, solver_order=2, schedule="beta"),
        GenerateParams(sampler="Analytic-DDIM", steps=50),
    ],
)
def test_recipes_round_trip_through_png_metadata(params, tmp_path):
    from engine.outputs import save_png

    params = params.model_copy(update={"prompt": "a cat, sitting", "seed": 5})
    path = save_png(
        Image.new("RGB", (8, 8)), tmp_path / "x.png", params, seed=5, model_name=None, index=0
    )
    text = Image.open(path).text
    assert recipe_from_png_text(text) == params
    # the A1111 text alone carries the sampler and its options too
    assert GenerateParams.from_a1111(text["parameters"]) == params


def test_a1111_spellings_are_read():
    p = GenerateParams.from_a1111(
        "x\nSteps: 20, Sampler: DPM++ 2M SDE, Schedule type: Exponential, CFG scale: 7, "
        "Seed: 1, Size: 64x64, Eta: 0.4"
    )
    assert (p.sampler, p.schedule, p.eta) == ("DPM++ 2M SDE", "exponential", 0.4)
    p = GenerateParams.from_a1111("x\nSteps: 20, Sampler: DDIM, Eta DDIM: 0.2, Seed: 1")
    assert p.eta == 0.2
    p = GenerateParams.from_a1111("x\nSteps: 20, Sampler: UniPC, UniPC order: 3, Seed: 1")
    assert p.solver_order == 3
    p = GenerateParams.from_a1111("x\nSteps: 20, Sampler: Euler, Schedule type: SGM Uniform")
    assert (p.schedule, p.timestep_spacing) == ("default", "trailing")
    assert "Schedule type: Karras" in GenerateParams(sampler="Euler", schedule="karras").to_a1111()


def test_sampler_grid_renders_cells_and_a_labelled_grid(loaded, fits, tmp_path):
    from engine.sampler_grid import run_sampler_grid

    spec = SamplerGridJob(
        params={
            "base": {"prompt": "a blue square", "seed": 11, "width": 64, "height": 64},
            "samplers": ["Euler", {"sampler": "DPM++ 2M", "schedule": "karras"}],
            "steps": [2, 3],
            "cfg_scales": [1.0, 4.0],
        }
    )
    job = make_job(spec)
    ctx = InProcessContext(loaded, job, tmp_path)
    run_sampler_grid(job, ctx, fits=fits)
    cells = [r for r in job.results if r.role == "image"]
    grids = [r for r in job.results if r.role == "grid"]
    assert len(cells) == 8 and len(grids) == 1 and job.step == job.total == 20
    assert {(c.cell.row, c.cell.col) for c in cells} == {(r, c) for r in range(4) for c in range(2)}
    assert all(c.cell.seconds > 0 and c.seed == 11 for c in cells)
    assert cells[4].cell.label == "DPM++ 2M · Karras · CFG 1"  # rows: sampler, then CFG
    # a cell opens with its own recipe
    recipe = recipe_from_png_text(Image.open(cells[5].path).text)
    assert (recipe.sampler, recipe.schedule, recipe.steps, recipe.cfg_scale, recipe.seed) == (
        "DPM++ 2M",
        "karras",
        3,
        1.0,
        11,
    )
    grid = Image.open(grids[0].path)
    assert grid.width > 2 * 64 and "sfumato" in grid.text and "parameters" in grid.text
    assert recipe_from_png_text(grid.text).prompt == "a blue square"
    # resuming re-renders nothing already saved
    before = len(job.results)
    job.results = job.results[:-1]  # the grid image is rebuilt
    run_sampler_grid(job, ctx, fits=fits)
    assert len(job.results) == before


def test_sa_solver_builds_from_the_built_in_models_dpm_solver_config():
    """The embedded model ships a DPMSolverMultistep config (algorithm_type "dpmsolver++"),
    which SA-Solver refused with NotImplementedError in every job."""
    import json

    from engine.models.registry import EMBEDDED_MODELS
    from engine.samplers import CATALOGUE

    config = json.loads(
        (EMBEDDED_MODELS / "sfumato-tiny" / "scheduler" / "scheduler_config.json").read_text()
    )
    assert config["algorithm_type"] == "dpmsolver++"
    scheduler = CATALOGUE["SA-Solver"].build(config, GenerateParams(sampler="SA-Solver", eta=0.5))
    assert scheduler.config.algorithm_type == "data_prediction"  # x̂₀, as dpmsolver++ is
    scheduler.set_timesteps(4)
    assert len(scheduler.timesteps) == 4
