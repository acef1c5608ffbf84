"""Rectified-flow transformers (SD3, Flux): listed, sampled with every flow sampler, refused
where a method or sampler does not apply (docs/flow-models.md).

The models are the tiny random-weight diffusers folders of tests/support/tiny_flow.py, so the
engine's real registry, loader, prompt encoding and sampling run on the real pipeline classes.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from PIL import Image
from starlette.testclient import TestClient

from engine.protocol import recipe_from_png_text
from engine.samplers import CATALOGUE
from tests.engine.conftest import Api
from tests.support.engine_proc import EngineProcess
from tests.support.inprocess import AUTH, engine_app

FLOW_SAMPLERS = [s.name for s in CATALOGUE.values() if s.model_family == "flow"]


@pytest.fixture(scope="module")
def flow_models_dir(tmp_path_factory):
    """tiny-sd3, tiny-flux and tiny-sd side by side (the refusals need both families)."""
    from tests.support.flow_export import export_flux, export_sd3
    from tests.support.tiny_flow import build_tiny_flux, build_tiny_sd3
    from tests.support.tiny_sd import build_tiny_sd

    root = tmp_path_factory.mktemp("flow-models")
    build_tiny_sd3(root / "tiny-sd3")
    build_tiny_flux(root / "tiny-flux")
    build_tiny_sd(root / "tiny-sd")
    # the same weights as single files: SD3 all in one, Flux with ae/clip_l/t5xxl beside it
    export_sd3(root / "tiny-sd3", root, name="sd3-single")
    export_flux(root / "tiny-flux", root, name="flux-single")
    return root


@pytest.fixture(scope="module")
def client(tmp_path_factory, flow_models_dir):
    """The real app in-process, worker not started: submissions are checked, nothing runs."""
    data = tmp_path_factory.mktemp("flow-inprocess")
    app, _engine = engine_app(data / "data", flow_models_dir)
    return TestClient(app, raise_server_exceptions=False, headers=AUTH)


@pytest.fixture(scope="module")
def flow_engine(tmp_path_factory, flow_models_dir):
    """``sfumato-engine --models-dir DIR`` as a user starts it, over the flow models."""
    proc = EngineProcess(tmp_path_factory.mktemp("flow-engine"), flow_models_dir)
    proc.start()
    yield proc
    proc.stop()


def test_the_engine_lists_flow_models_with_their_architecture(client):
    r = client.get("/v1/models")
    assert r.status_code == 200
    arch = {
        m["id"]: (m["format"], m["architecture"], m["problem"])
        for m in r.json()
        if not m["embedded"]
    }
    assert arch == {
        "tiny-sd3": ("diffusers", "sd3", ""),
        "tiny-flux": ("diffusers", "flux", ""),
        "tiny-sd": ("diffusers", "sd1", ""),
        "sd3-single": ("single_file", "sd3", ""),
        "flux-single": ("single_file", "flux", ""),
    }  # no ae/clip_l/t5xxl entries


def test_the_sampler_catalogue_says_which_family_each_sampler_samples(client):
    infos = {s["name"]: s for s in client.get("/v1/samplers").json()}
    assert {"Flow Euler", "Flow Heun", "Flow DPM++ 2M", "Flow UniPC"} <= set(FLOW_SAMPLERS)
    for name in FLOW_SAMPLERS:
        assert infos[name]["model_family"] == "flow"
        assert not infos[name]["uncertainty"]
        assert "ε-prediction" in infos[name]["uncertainty_note"]
        assert "calibrated" not in {o["name"] for o in infos[name]["options"]}
    assert infos["Euler a"]["model_family"] == "diffusion"
    assert infos["DDIM"]["model_family"] == "diffusion"


def _submit(client, **params):
    params = {"width": 32, "height": 32, "steps": 2, "prompt": "a red cat", **params}
    return client.post("/v1/jobs", json={"job": {"kind": "generate", "params": params}})


REFUSALS = {
    "ε-sampler on SD3": (
        {"model": "tiny-sd3", "sampler": "Euler a"},
        "sampler",
        "does not sample sd3",
    ),
    "ε-sampler on Flux": (
        {"model": "tiny-flux", "sampler": "DPM++ 2M Karras"},
        "sampler",
        "Flow Euler",
    ),
    "flow sampler on SD": (
        {"model": "tiny-sd", "sampler": "Flow Euler"},
        "sampler",
        "does not sample sd1",
    ),
    "Analytic-DPM on Flux": (
        {"model": "tiny-flux", "sampler": "Analytic-DDPM"},
        "sampler",
        "ε-prediction",
    ),
    "calibration on SD3": (
        {"model": "tiny-sd3", "sampler": "Flow Euler", "calibrated": True},
        "calibrated",
        "ε-prediction",
    ),
    "BayesDiff on Flux": (
        {"model": "tiny-flux", "sampler": "Flow Euler", "uncertainty": {"samples": 2}},
        "uncertainty",
        "ε-prediction",
    ),
    "flow options on SD": (
        {"model": "tiny-sd", "sampler": "Euler", "flow": {"shift": 3.0}},
        "flow",
        "flow models",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_what_does_not_apply_to_a_family_is_refused_at_submit_with_the_reason(client, case):
    params, field, words = REFUSALS[case]
    r = _submit(client, **params)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"].endswith(field), body
    assert words in body["message"], body


def test_a_flow_sampler_on_a_flow_model_is_accepted(client):
    r = _submit(client, model="tiny-flux", sampler="Flow Euler", flow={"guidance": 3.5})
    assert r.status_code == 201, r.text


async def _run(api: Api, **params) -> dict:
    job = await api.generate(width=32, height=32, steps=2, prompt="a red cat", **params)
    return await api.wait(job["id"], timeout=120)


@pytest.mark.parametrize("model", ["tiny-sd3", "tiny-flux", "sd3-single", "flux-single"])
async def test_every_flow_sampler_generates_on_both_architectures(flow_engine, model):
    """Through the diffusers folders and through the single-file exports of the same weights."""
    async with aiohttp.ClientSession() as session:
        api = Api(flow_engine, session)
        seen = []
        for sampler in FLOW_SAMPLERS:
            # SD3: CFG with a negative prompt; Flux: distilled guidance, CFG 1; a shift on one
            flow = {"shift": 2.0, "guidance": 4.0} if sampler == "Flow Euler" else None
            cfg = 3.0 if "sd3" in model else 1.0
            done = await _run(
                api,
                model=model,
                sampler=sampler,
                seed=7,
                cfg_scale=cfg,
                negative_prompt="blue",
                flow=flow,
            )
            assert done["state"] == "done", (sampler, done.get("error"))
            image = Image.open(done["results"][0]["path"])
            assert image.size == (32, 32)
            recipe = recipe_from_png_text(image.text)
            assert recipe.sampler == sampler and recipe.model == model
            if flow:
                assert recipe.flow is not None and recipe.flow.shift == 2.0
            seen.append(image.tobytes())
        assert len(set(seen)) == len(seen)  # each sampler took its own path


async def test_a_flux_generation_is_deterministic_and_follows_the_guidance(flow_engine):
    async with aiohttp.ClientSession() as session:
        api = Api(flow_engine, session)
        runs = [
            await _run(
                api,
                model="tiny-flux",
                sampler="Flow Euler",
                seed=3,
                cfg_scale=cfg,
                negative_prompt=neg,
                flow={"guidance": g},
            )
            for g, cfg, neg in ((3.5, 1.0, ""), (3.5, 7.0, ""), (8.0, 1.0, ""), (3.5, 7.0, "blue"))
        ]
        pixels = [Image.open(r["results"][0]["path"]).tobytes() for r in runs]
        assert pixels[0] == pixels[1]  # no negative prompt: no true CFG, CFG scale unused
        assert pixels[0] != pixels[2]  # the distilled guidance reaches the transformer
        assert pixels[0] != pixels[3]  # true CFG with a negative prompt


def test_sfumato_engine_lists_the_flow_models(flow_engine):
    async def models():
        async with aiohttp.ClientSession() as session:
            _, listed = await Api(flow_engine, session).call("GET", "/models", expect=200)
            return listed

    listed = asyncio.run(models())
    assert {(m["id"], m["architecture"]) for m in listed} >= {
        ("tiny-sd3", "sd3"),
        ("tiny-flux", "flux"),
        ("sd3-single", "sd3"),
        ("flux-single", "flux"),
    }


def test_forge_flow_keys_round_trip_through_the_a1111_text():
    from engine import a1111
    from engine.protocol import FlowOptions, GenerateParams

    p = GenerateParams(
        prompt="a cat",
        sampler="Flow Euler",
        cfg_scale=1.0,
        seed=3,
        flow=FlowOptions(guidance=3.5, shift=1.15),
    )
    text = a1111.write(p)
    assert "Distilled CFG Scale: 3.5" in text and "Shift: 1.15" in text
    back = a1111.parse(text)
    assert back.params == p and back.not_restored == []
    forge = a1111.parse("a cat\nSteps: 20, Sampler: Flow Euler, Distilled CFG Scale: 4, Seed: 1")
    assert forge.params.flow == FlowOptions(guidance=4.0) and "flow" in forge.fields
    assert "Distilled" not in a1111.write(GenerateParams(prompt="x", seed=1))


@pytest.mark.parametrize("name", ["FlowMatchEulerDiscreteScheduler", "FlowHeunScheduler"])
def test_previews_of_flow_samplers_show_the_clean_estimate(name):
    """x̂₀ = x_σ − σ·v̂ is exact for the true velocity ε − x₀ of the straight path."""
    import torch

    from engine import schedulers
    from engine.previews import DenoisedTap

    cls = getattr(schedulers, name, None) or getattr(__import__("diffusers"), name)
    sched = cls(shift=3.0)
    sched.set_timesteps(4)
    x0, eps = torch.randn(1, 16, 4, 4), torch.randn(1, 16, 4, 4)
    sigma = sched.sigmas[0]
    x = (1 - sigma) * x0 + sigma * eps
    with DenoisedTap(sched) as tap:
        sched.step(eps - x0, sched.timesteps[0], x)
        assert torch.allclose(tap.latest(x), x0, atol=1e-5)


@pytest.mark.parametrize(
    ("key", "arch"),
    [
        ("model.diffusion_model.joint_blocks.0.x.weight", "sd3"),
        ("double_blocks.0.img_attn.qkv.weight", "flux"),
    ],
)
def test_a_flow_checkpoint_of_an_unknown_size_says_what_to_put_beside_it(tmp_path, key, arch):
    import torch
    from safetensors.torch import save_file

    from engine.models.registry import describe

    path = tmp_path / "model.safetensors"
    save_file({key: torch.zeros(2, 2)}, str(path))
    info = describe(path, embedded=False)
    assert info.architecture == arch
    assert "no config for" in info.problem and "model.config/" in info.problem


async def test_t5_on_the_cpu_and_model_offload_are_load_options_reported_in_health(
    tmp_path_factory, flow_models_dir
):
    """``--offload t5-cpu`` with float16 weights: T5 runs on the CPU in bfloat16, the
    transformer in float16, and generation works across the two dtypes; a load request can
    change the placement, and Health says what is in force."""
    proc = EngineProcess(
        tmp_path_factory.mktemp("offload-engine"),
        flow_models_dir,
        extra_args=["--dtype", "fp16", "--offload", "t5-cpu"],
    )
    proc.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(proc, session)
            _, health = await api.call("GET", "/health", expect=200)
            assert health["offload"] == "t5-cpu" and health["offload_detail"] == ""
            done = await _run(
                api,
                model="flux-single",
                sampler="Flow Euler",
                seed=1,
                cfg_scale=2.0,
                negative_prompt="blue",
            )  # true CFG: both prompts
            assert done["state"] == "done", done.get("error")
            _, health = await api.call("GET", "/health", expect=200)
            assert health["offload_detail"] == "T5 on the CPU (bfloat16); the rest on cpu"
            assert health["dtype"] == "float16"
            await api.call(
                "POST", "/models/load", {"id": "tiny-flux", "offload": "model"}, expect=200
            )
            _, health = await api.call("GET", "/health", expect=200)
            assert health["offload"] == "model" and "applies to a GPU" in health["offload_detail"]
            status, body = await api.call(
                "POST", "/models/load", {"id": "tiny-flux", "offload": "disk"}
            )
            assert status == 422 and "offload" in json.dumps(body)
    finally:
        proc.stop()


def test_forge_euler_on_a_flow_model_reads_as_flow_euler():
    from engine import a1111

    forge = (
        "a cat\nSteps: 20, Sampler: Euler, Schedule type: Simple, CFG scale: 1, "
        "Distilled CFG Scale: 3.5, Seed: 1, Size: 896x1152, Model: flux1-dev"
    )
    r = a1111.parse(forge)  # Forge's flow keys say it is a flow model
    assert r.params.sampler == "Flow Euler" and r.params.flow.guidance == 3.5
    assert r.params.schedule == "default"
    assert any("Euler" in n and "Flow Euler" in n for n in r.notes)
    r = a1111.parse(
        "a cat\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 5, Seed: 1", model_family="flow"
    )
    assert r.params.sampler == "Flow DPM++ 2M"
    r = a1111.parse(
        "a cat\nSteps: 20, Sampler: Heun, Schedule type: Karras, Seed: 1", model_family="flow"
    )
    assert r.params.sampler == "Flow Heun" and r.params.schedule == "default"
    assert "without schedule" in r.notes[0]
    r = a1111.parse(
        "a cat\nSteps: 20, Sampler: Flow UniPC, CFG scale: 5, Seed: 1", model_family="diffusion"
    )
    assert r.params.sampler == "UniPC"
    plain = a1111.parse("a cat\nSteps: 20, Sampler: Euler a, CFG scale: 5, Seed: 1")
    assert plain.params.sampler == "Euler a" and plain.notes == []  # SD's text stays as it is
    assert {a1111.sampler_for(n, "flow") for n in ("Euler", "DDIM", "Flow Heun")} == {
        "Flow Euler",
        "Flow Heun",
    }


async def test_a_sampler_grid_runs_on_a_flux_single_file(flow_engine):
    """Compare… on a flow model: every cell renders (Flux's packed latents previewed, its
    distilled guidance passed as generate passes it)."""
    async with aiohttp.ClientSession() as session:
        api = Api(flow_engine, session)
        base = {
            "model": "flux-single",
            "prompt": "a red cat",
            "width": 32,
            "height": 32,
            "seed": 4,
            "cfg_scale": 1.0,
            "sampler": "Flow Euler",
            "flow": {"guidance": 4.0},
        }
        _, job = await api.call(
            "POST",
            "/jobs",
            {
                "job": {
                    "kind": "sampler_grid",
                    "params": {
                        "base": base,
                        "samplers": ["Flow Euler", "Flow Heun"],
                        "steps": [2, 3],
                    },
                }
            },
            expect=201,
        )
        done = await api.wait(job["id"], timeout=300)
        assert done["state"] == "done", done.get("message")
        cells = [r for r in done["results"] if r["role"] == "image"]
        assert len(cells) == 4
        recipe = recipe_from_png_text(Image.open(cells[0]["path"]).text)
        assert recipe.flow.guidance == 4.0 and recipe.sampler == "Flow Euler"
