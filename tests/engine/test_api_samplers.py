"""Samplers, fits and the sampler grid through the real engine's HTTP API."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.protocol import recipe_from_png_text

pytestmark = pytest.mark.slow


async def test_samplers_serve_their_options(api):
    _, samplers = await api.call("GET", "/samplers", expect=200)
    by_name = {s["name"]: s for s in samplers}
    assert by_name["DPM++ 2M Karras"]["alias_of"] == "DPM++ 2M"
    options = {o["name"]: o for o in by_name["UniPC"]["options"]}
    assert options["solver_order"]["label"] == "UniPC order" and "schedule" in options
    assert by_name["Analytic-DDIM"]["needs_fit"] == "analytic"
    spacing = {o["name"]: o for o in by_name["Analytic-DDIM"]["options"]}["timestep_spacing"]
    assert "optimal" in spacing["choices"]
    assert (
        "optimal"
        not in {o["name"]: o for o in by_name["DDIM"]["options"]}["timestep_spacing"]["choices"]
    )


@pytest.mark.parametrize(
    "params, field",
    [
        ({"sampler": "DDIM", "schedule": "karras"}, "job.params.schedule"),
        ({"sampler": "Euler", "eta": 0.5}, "job.params.eta"),
        ({"schedule": "polyexponential"}, "job.params.schedule"),
        ({"sampler": "DDIM", "timestep_spacing": "optimal"}, "job.params.timestep_spacing"),
    ],
)
async def test_options_that_do_not_apply_answer_422(api, params, field):
    _, body = await api.call("POST", "/jobs", {"job": {"kind": "generate", "params": params}}, 422)
    assert body["field"] == field


async def test_analytic_fit_then_sample_and_list_fits(api, tmp_path):
    for i in range(8):
        img = np.full((64, 64, 3), 30 * i, np.uint8)
        img[20:44, 20:44] = 255 - 30 * i
        Image.fromarray(img).save(tmp_path / f"{i}.png")
    _, fits = await api.call("GET", "/fits?model=tiny-sd", expect=200)
    assert fits == []
    job = await api.wait((await api.generate(sampler="Analytic-DDPM", steps=3))["id"])
    assert job["state"] == "failed" and "analytic_fit" in job["message"]
    body = {
        "job": {
            "kind": "analytic_fit",
            "params": {
                "steps": [3],
                "data": {"source": "folder", "folder": str(tmp_path), "count": 8},
            },
        }
    }
    _, fit_job = await api.call("POST", "/jobs", body, 201)
    fit_job = await api.wait(fit_job["id"])
    assert fit_job["state"] == "done", fit_job["message"]
    assert fit_job["fit"]["images"] == 8 and fit_job["fit"]["steps"] == [3]
    _, fits = await api.call("GET", "/fits?model=tiny-sd", expect=200)
    assert [f["kind"] for f in fits] == ["analytic"] and fits[0]["source"].startswith("folder:")
    job = await api.wait((await api.generate(sampler="Analytic-DDPM", steps=3, seed=4))["id"])
    assert job["state"] == "done", job["message"]
    recipe = recipe_from_png_text(Image.open(job["results"][0]["path"]).text)
    assert recipe.sampler == "Analytic-DDPM" and recipe.steps == 3

    # The optimal trajectory (§4): asked before it is fitted, a message that says what to run;
    # then fitted on the candidate grid and cached with the fit.
    job = await api.wait(
        (await api.generate(sampler="Analytic-DDIM", steps=3, timestep_spacing="optimal"))["id"]
    )
    assert job["state"] == "failed" and "timestep_spacing 'optimal'" in job["message"]
    body["job"]["params"].update(timestep_spacing="optimal", samples_per_step=4)
    _, fit_job = await api.call("POST", "/jobs", body, 201)
    fit_job = await api.wait(fit_job["id"], 600)  # 100 timesteps
    assert fit_job["state"] == "done", fit_job["message"]
    assert fit_job["fit"]["timestep_spacing"] == "optimal" and fit_job["fit"]["timesteps"] == 100
    job = await api.wait(
        (await api.generate(sampler="Analytic-DDIM", steps=3, seed=4, timestep_spacing="optimal"))[
            "id"
        ]
    )
    assert job["state"] == "done", job["message"]
    recipe = recipe_from_png_text(Image.open(job["results"][0]["path"]).text)
    assert recipe.timestep_spacing == "optimal"


async def test_sampler_grid_job(api):
    body = {
        "job": {
            "kind": "sampler_grid",
            "params": {
                "base": {"prompt": "a cat", "seed": 9, "width": 64, "height": 64},
                "samplers": ["Euler a", {"sampler": "DPM++ 2M", "schedule": "karras"}],
                "steps": [2, 4],
            },
        }
    }
    _, job = await api.call("POST", "/jobs", body, 201)
    job = await api.wait(job["id"])
    assert job["state"] == "done", job["message"]
    cells = [r for r in job["results"] if r["role"] == "image"]
    grid = [r for r in job["results"] if r["role"] == "grid"]
    assert len(cells) == 4 and len(grid) == 1
    assert [(c["cell"]["row"], c["cell"]["col"], c["cell"]["steps"]) for c in cells] == [
        (0, 0, 2),
        (0, 1, 4),
        (1, 0, 2),
        (1, 1, 4),
    ]
    _, data = await api.call("GET", f"/jobs/{job['id']}/files/{grid[0]['name']}", expect=200)
    assert data == Path(grid[0]["path"]).read_bytes()
    _, body = await api.call(
        "POST",
        "/jobs",
        {
            "job": {
                "kind": "sampler_grid",
                "params": {"samplers": ["DDIM", {"sampler": "Euler", "eta": 0.2}], "steps": [2]},
            }
        },
        422,
    )
    assert body["field"] == "job.params.samplers.1.eta"
