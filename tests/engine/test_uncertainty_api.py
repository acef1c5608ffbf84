"""BayesDiff uncertainty through a real engine process: fit, generate with maps, 422s."""

import io

import numpy as np
import pytest
from PIL import Image

from engine.protocol import GenerateParams, recipe_from_png_text

from .conftest import next_event

pytestmark = pytest.mark.slow


async def _fit(api, tmp_path, count=8):
    for i in range(count):
        img = np.full((64, 64, 3), 25 * i, np.uint8)
        img[16:48, 16:48] = 255 - 25 * i
        Image.fromarray(img).save(tmp_path / f"{i}.png")
    body = {
        "job": {
            "kind": "uncertainty_fit",
            "params": {"data": {"source": "folder", "folder": str(tmp_path), "count": count}},
        }
    }
    _, job = await api.call("POST", "/jobs", body, 201)
    return job


async def test_samplers_say_which_carry_uncertainty(api):
    _, samplers = await api.call("GET", "/samplers", expect=200)
    by_name = {s["name"]: s for s in samplers}
    assert by_name["DDIM"]["uncertainty"] and by_name["DPM2"]["uncertainty"]
    assert not by_name["Euler a"]["uncertainty"]
    assert "DDIM" in by_name["Euler a"]["uncertainty_note"]
    assert by_name["DDIM"]["uncertainty_note"] == ""


async def test_uncertainty_without_fit_or_with_wrong_sampler_answers_422(api):
    _, body = await api.call(
        "POST",
        "/jobs",
        {
            "job": {
                "kind": "generate",
                "params": {"sampler": "DDIM", "uncertainty": True, "width": 64, "height": 64},
            }
        },
        422,
    )
    assert body["field"] == "job.params.uncertainty"
    assert "Fit in the Uncertainty panel" in body["message"]
    _, body = await api.call(
        "POST",
        "/jobs",
        {"job": {"kind": "generate", "params": {"sampler": "Euler a", "uncertainty": True}}},
        422,
    )
    assert body["field"] == "job.params.sampler" and "DDIM or DPM2" in body["message"]
    _, body = await api.call(
        "POST",
        "/jobs",
        {
            "job": {
                "kind": "generate",
                "params": {"sampler": "DDIM", "steps": 4, "variation_step": 4},
            }
        },
        422,
    )
    assert body["field"] == "job.params.uncertainty.variation_step"


async def test_fit_with_progress_then_generate_with_maps(api, tmp_path):
    ws = await api.events()
    fit = await _fit(api, tmp_path)
    stages = set()
    while "fitting uncertainty" not in stages:  # loading, encoding images, then the fit
        stages.add((await next_event(ws, "progress", fit["id"]))["stage"])
    fit = await api.wait(fit["id"])
    assert fit["state"] == "done", fit["message"]
    assert fit["fit"]["kind"] == "uncertainty" and fit["fit"]["images"] == 8
    assert fit["fit"]["prior_precision"] == 1.0 and fit["fit"]["seconds"] > 0
    _, fits = await api.call("GET", "/fits?model=tiny-sd", expect=200)
    assert [f["kind"] for f in fits] == ["uncertainty"]

    for sampler, kind in (("DDIM", "latent"), ("DPM2", "pixel")):
        job = await api.generate(
            sampler=sampler,
            uncertainty=True,
            steps=4,
            batch_size=2,
            seed=5,
            prompt="a red square",
            uncertainty_skip=2,
            uncertainty_samples=3,
            uncertainty_decodes=4,
            uncertainty_score=kind,
        )
        result = await next_event(ws, "result", job["id"])
        assert result["image"]["uncertainty"]["map_name"].endswith(".npy")
        job = await api.wait(job["id"])
        assert job["state"] == "done", job["message"]
        scores = []
        for r in job["results"]:
            u = r["uncertainty"]
            _, raw = await api.call("GET", f"/jobs/{job['id']}/files/{u['map_name']}", expect=200)
            arr = np.load(io.BytesIO(raw))
            assert arr.shape == (64, 64) and arr.dtype == np.float32
            assert np.isfinite(arr).all() and arr.min() >= 0
            assert u["pixel_score"] == pytest.approx(arr.mean(), rel=1e-4)
            assert np.isfinite(u["latent_score"]) and u["latent_score"] > 0
            assert u["score_kind"] == kind and u["score"] == u[f"{kind}_score"]
            assert u["map_min"] == pytest.approx(arr.min()) and u["map_max"] == pytest.approx(
                arr.max()
            )
            png = Image.open(r["path"])
            assert f"Uncertainty score: {u['score']:.6g}" in png.text["parameters"]
            assert recipe_from_png_text(png.text).uncertainty
            scores.append(u["score"])
        assert scores[0] > 0

    # The image is the one plain sampling renders: uncertainty only adds the map.
    plain = await api.wait(
        (await api.generate(sampler="DDIM", steps=4, seed=5, prompt="a red square"))["id"]
    )
    with_map = await api.wait(
        (
            await api.generate(
                sampler="DDIM", steps=4, seed=5, prompt="a red square", uncertainty=True
            )
        )["id"]
    )
    a = np.asarray(Image.open(plain["results"][0]["path"]), np.int16)
    b = np.asarray(Image.open(with_map["results"][0]["path"]), np.int16)
    assert np.abs(a - b).max() <= 1

    # Variations from step 2: three different images around the same trajectory.
    var = await api.wait(
        (
            await api.generate(
                sampler="DDIM",
                steps=4,
                seed=5,
                batch_size=3,
                prompt="a red square",
                variation_step=2,
                variation_seed=11,
            )
        )["id"]
    )
    assert var["state"] == "done", var["message"]
    imgs = [np.asarray(Image.open(r["path"]), np.int16) for r in var["results"]]
    assert all(r["uncertainty"] is None for r in var["results"])
    assert np.abs(imgs[0] - imgs[1]).max() > 0 and np.abs(imgs[1] - imgs[2]).max() > 0
    recipe = recipe_from_png_text(Image.open(var["results"][1]["path"]).text)
    u = recipe.uncertainty
    assert u is not None and not u.map
    assert (u.variation_step, u.variation_seed) == (2, 11)
    await ws.close()


def test_recipe_round_trips_through_a1111_text():
    p = GenerateParams(
        sampler="DDIM",
        uncertainty=True,
        uncertainty_samples=7,
        uncertainty_skip=3,
        uncertainty_decodes=9,
        variation_step=12,
        variation_seed=7,
    )
    text = p.to_a1111(seed=3) + ", Uncertainty score: 0.00123"
    assert "Uncertainty: 7/3/9" in text and "Uncertainty variation: 12/7" in text
    assert "Variation seed" not in text  # A1111's key means its subseed
    q = GenerateParams.from_a1111(text)
    u = q.uncertainty
    assert (u.map, u.samples, u.skip, u.decodes, u.variation_step, u.variation_seed) == (
        True,
        7,
        3,
        9,
        12,
        7,
    )
    assert not GenerateParams.from_a1111(GenerateParams().to_a1111()).uncertainty
