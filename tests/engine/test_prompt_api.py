"""The prompt language over HTTP on the built-in model: token counts, /v1/loras, a LoRA refused
at submit by name, and a weighted prompt with a LoRA whose recipe carries its hash."""

from __future__ import annotations

import aiohttp
import pytest
from PIL import Image

from engine.models.registry import RESOURCES
from engine.protocol import recipe_from_png_text
from tests.engine.conftest import Api
from tests.support.engine_proc import EngineProcess

pytestmark = pytest.mark.slow


@pytest.fixture
async def api(tmp_path):
    from diffusers import StableDiffusionPipeline

    from tests.support.loras import write_kohya_lora

    models = tmp_path / "models"
    pipe = StableDiffusionPipeline.from_pretrained(
        RESOURCES / "models" / "sfumato-tiny", local_files_only=True
    )
    write_kohya_lora(pipe, models / "loras" / "ink.safetensors")
    (tmp_path / "data").mkdir()
    proc = EngineProcess(tmp_path / "data", models, extra_args=["--model", "sfumato-tiny"])
    proc.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(proc, session)
    finally:
        proc.stop()


async def test_tokens_loras_and_a_lora_job(api):
    _, count = await api.call("POST", "/prompts/tokens", {"prompt": "a cat"}, 200)
    assert count == {"tokens": 2, "limit": 75, "chunks": [2]}
    # "b , (a red cat ,)×29 a red cat": 121 tokens; at token 75 ('red') the last comma is 2
    # back, so 'a' moves to chunk 2 (A1111's back-off); A1111 counts a full chunk as 75
    long = "b, " + ", ".join(["a red cat"] * 30)
    _, count = await api.call("POST", "/prompts/tokens", {"prompt": long}, 200)
    assert count == {"tokens": 75 + 47, "limit": 150, "chunks": [74, 47]}
    _, count = await api.call("POST", "/prompts/tokens", {"prompt": "a BREAK b <lora:ink:1>"}, 200)
    assert count == {"tokens": 76, "limit": 150, "chunks": [1, 1]}

    _, loras = await api.call("GET", "/loras", expect=200)
    assert [(x["name"], x["context_dim"], x["format"]) for x in loras] == [("ink", 128, "kohya")]

    err = await api.generate(prompt="a <lora:nope:1>", expect=422)
    assert err["field"] == "job.params.prompt" and "'nope'" in err["message"]

    job = await api.generate(prompt="a (red:1.3) apple <lora:ink:0.7>", seed=1)
    job = await api.wait(job["id"])
    assert job["state"] == "done", job["message"]
    recipe = recipe_from_png_text(Image.open(job["results"][0]["path"]).text)
    assert recipe.prompt == "a (red:1.3) apple <lora:ink:0.7>"
    assert recipe.lora_hashes.startswith("ink: ") and len(recipe.lora_hashes) == 5 + 12
