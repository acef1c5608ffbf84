"""The engine's HTTP + WebSocket API, against a real engine process on a free port."""

import asyncio
import base64
import io
import json
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from PIL import Image

from engine.protocol import recipe_from_png_text
from tests.engine.conftest import next_event

pytestmark = pytest.mark.slow


async def test_every_request_needs_the_token(api):
    async with aiohttp.ClientSession() as s:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            async with s.get(api.url("/health"), headers=headers) as r:
                assert r.status == 401
                assert "token" in (await r.json())["message"]
        async with s.post(api.url("/jobs"), json={"job": {"kind": "generate"}}) as r:
            assert r.status == 401
        for query in ("", "?token=wrong"):
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await s.ws_connect(f"{api.engine.url}/v1/events{query}")


async def test_browser_origin_is_refused_even_with_token(api):
    async with aiohttp.ClientSession() as s:
        headers = {**api.engine.headers, "Origin": "https://evil.example"}
        async with s.get(api.url("/health"), headers=headers) as r:
            assert r.status == 403


async def test_health_models_samplers(api):
    _, health = await api.call("GET", "/health", expect=200)
    assert health["api"] == "v1" and health["device"] == "cpu" and health["state"] == "ready"
    _, models = await api.call("GET", "/models", expect=200)
    assert "tiny-sd" in [m["id"] for m in models]
    _, samplers = await api.call("GET", "/samplers", expect=200)
    names = [s["name"] for s in samplers]
    for required in ("DDIM", "Euler", "Euler a", "DPM++ 2M", "DPM++ 2M Karras"):
        assert required in names


@pytest.mark.parametrize(
    "params, field, words",
    [
        ({"width": 65}, "job.params.width", "multiple of 8"),
        ({"height": 0}, "job.params.height", "positive"),
        ({"width": 8192}, "job.params.width", "at most 4096"),
        ({"steps": 0}, "job.params.steps", "at least 1"),
        ({"sampler": "Bogus 9000"}, "job.params.sampler", "Unknown sampler"),
        ({"model": "no-such-model"}, "job.params.model", "No model"),
        ({"batch_size": 0}, "job.params.batch_size", "greater than or equal to 1"),
    ],
)
async def test_bad_parameters_answer_422_with_the_field(api, params, field, words):
    _, body = await api.call("POST", "/jobs", {"job": {"kind": "generate", "params": params}}, 422)
    assert body["field"] == field
    assert words in body["message"]


async def test_empty_prompt_is_valid(api):
    job = await api.generate(prompt="")
    assert (await api.wait(job["id"]))["state"] == "done"


async def test_load_missing_or_corrupt_model_says_why(api, tmp_path):
    status, body = await api.call("POST", "/models/load", {"path": str(tmp_path / "nope")})
    assert status == 404 and "No model" in body["message"]
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    status, body = await api.call("POST", "/models/load", {"path": str(bad)})
    assert status == 422 and "broken" in body["message"]
    _, health = await api.call("GET", "/health", expect=200)  # still serving
    assert health["state"] == "ready"


async def test_generate_streams_progress_previews_and_saves_recipe(api):
    ws = await api.events()
    first = json.loads((await ws.receive()).data)
    assert first["type"] == "engine"
    job = await api.generate(
        prompt="a red apple",
        seed=1234,
        steps=12,
        batch_size=2,
        sampler="DPM++ 2M Karras",
        negative_prompt="blurry",
    )
    assert job["state"] == "queued"
    progress = await next_event(ws, "progress", job["id"])
    while progress["stage"] != "sampling":  # first comes "loading <model>"
        progress = await next_event(ws, "progress", job["id"])
    assert progress["total"] == 12
    results = []
    while len(results) < 2:
        msg = json.loads((await asyncio.wait_for(ws.receive(), 60)).data)
        if msg["type"] == "preview" and msg["job_id"] == job["id"]:
            png = Image.open(io.BytesIO(base64.b64decode(msg["png_b64"])))
            assert png.size == (msg["width"], msg["height"])
        if msg["type"] == "result" and msg["job_id"] == job["id"]:
            # written before it is announced
            assert Path(msg["image"]["path"]).is_file()
            results.append(msg["image"])
    finished = await next_event(ws, "finished", job["id"])
    assert finished["job"]["state"] == "done"
    assert [r["seed"] for r in results] == [1234, 1235]
    image = Image.open(results[0]["path"])
    recipe = recipe_from_png_text(image.text)
    assert recipe.prompt == "a red apple" and recipe.seed == 1234
    assert recipe.sampler == "DPM++ 2M Karras" and recipe.negative_prompt == "blurry"
    assert "Steps: 12, Sampler: DPM++ 2M Karras" in image.text["parameters"]
    _, data = await api.call("GET", f"/jobs/{job['id']}/files/{results[1]['name']}", expect=200)
    assert data == Path(results[1]["path"]).read_bytes()
    await ws.close()


async def test_previews_arrive_during_a_long_job(api):
    ws = await api.events()
    job = await api.generate(steps=60)
    preview = await next_event(ws, "preview", job["id"], timeout=90)
    assert preview["step"] < 60
    await api.wait(job["id"])
    await ws.close()


async def test_same_seed_same_image_and_samplers_render(api):
    pixels = []
    for sampler in ("Euler", "Euler", "DDIM"):
        job = await api.wait((await api.generate(seed=7, sampler=sampler, steps=6))["id"])
        assert job["state"] == "done", job["message"]
        pixels.append(np.asarray(Image.open(job["results"][0]["path"]), dtype=np.float32))
    assert np.array_equal(pixels[0], pixels[1])
    assert not np.array_equal(pixels[0], pixels[2])
    for p in pixels:
        assert np.isfinite(p).all() and p.std() > 1.0


async def test_queue_is_fifo_with_priority_and_move(api):
    running = await api.generate(steps=300)
    a = await api.generate()
    b = await api.generate()
    c = await api.generate(priority=5)
    _, jobs = await api.call("GET", "/jobs", expect=200)
    queued = [j["id"] for j in jobs if j["state"] == "queued"]
    assert queued == [c["id"], a["id"], b["id"]]
    _, moved = await api.call("POST", f"/jobs/{b['id']}/move", {"position": 0}, 200)
    assert [j["id"] for j in moved] == [b["id"], c["id"], a["id"]]
    # cancelling a queued job never touches the running one
    _, cancelled = await api.call("DELETE", f"/jobs/{c['id']}", expect=200)
    assert cancelled["state"] == "cancelled"
    _, run = await api.call("GET", f"/jobs/{running['id']}", expect=200)
    assert run["state"] in ("running", "queued")
    await api.call("DELETE", f"/jobs/{running['id']}", expect=200)
    done = [await api.wait(j["id"]) for j in (running, b, a)]
    assert [d["state"] for d in done] == ["cancelled", "done", "done"]
    assert done[1]["started_at"] < done[2]["started_at"]


async def test_cancel_stops_the_running_job_within_a_step(api):
    ws = await api.events()
    job = await api.generate(steps=400)
    while True:
        progress = await next_event(ws, "progress", job["id"])
        if progress["step"] >= 2:
            break
    _, _ = await api.call("DELETE", f"/jobs/{job['id']}", expect=200)
    _, seen = await api.call("GET", f"/jobs/{job['id']}", expect=200)
    final = await api.wait(job["id"], timeout=30)
    assert final["state"] == "cancelled"
    assert final["step"] <= seen["step"] + 1
    assert final["results"] == []
    await ws.close()


async def test_unload_frees_the_model(api):
    await api.wait((await api.generate())["id"])
    _, health = await api.call("GET", "/health", expect=200)
    assert health["model"] == "tiny-sd" and health["memory_used"] > 0
    _, health = await api.call("POST", "/models/unload", expect=200)
    assert health["model"] is None and health["memory_used"] == 0
    job = await api.wait((await api.generate())["id"])  # loads again on demand
    assert job["state"] == "done"
