"""The prompt language on the built-in model, end to end through the pipeline: A1111's weights,
long prompts, prompt editing, clip skip, LoRAs (kohya and PEFT files) and embeddings."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from engine.errors import EngineError
from engine.models.registry import RESOURCES
from engine.prompts.job import PromptSession, check_prompts
from engine.protocol import ModelInfo
from tests.support.loras import write_embedding, write_kohya_lora, write_peft_lora

TINY = RESOURCES / "models" / "sfumato-tiny"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # ~25 small renders on the CPU


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        TINY, local_files_only=True, safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    info = ModelInfo(id="sfumato-tiny", name="Sfumato tiny", format="diffusers", path=str(TINY))
    return SimpleNamespace(pipe=pipe, info=info, device="cpu")


@pytest.fixture(scope="module")
def folder(tmp_path_factory, loaded):
    """A models folder with two LoRAs (kohya, PEFT) and an embedding for the built-in model."""
    root = tmp_path_factory.mktemp("models")
    write_kohya_lora(loaded.pipe, root / "loras" / "ink.safetensors")
    write_peft_lora(loaded.pipe, root / "loras" / "paper.safetensors")
    write_embedding(loaded.pipe, root / "embeddings" / "glowstyle.safetensors")
    (root / "embeddings" / "oldstyle.pt").write_bytes(b"not loaded")
    return root


def render(
    loaded,
    folder,
    prompt: str,
    negative: str = "",
    steps: int = 2,
    clip_skip: int = 1,
    seen: list | None = None,
):
    pipe = loaded.pipe
    hook = None
    if seen is not None:
        hook = pipe.unet.register_forward_pre_hook(
            lambda _m, _a, kw: seen.append(kw["encoder_hidden_states"].clone()), with_kwargs=True
        )
    try:
        with PromptSession(loaded, [folder], [prompt, negative]) as prompts:
            cond = prompts.encode(prompt, negative, 7.0, steps, clip_skip)
            image = pipe(
                width=64,
                height=64,
                num_inference_steps=steps,
                guidance_scale=7.0,
                output_type="np",
                generator=torch.Generator().manual_seed(4),
                callback_on_step_end=lambda _p, i, _t, kw: cond.on_step_end(i, kw),
                callback_on_step_end_tensor_inputs=cond.tensor_inputs,
                **cond.call_kwargs(),
            ).images
            recipe = prompts.recipe_update()
    finally:
        if hook is not None:
            hook.remove()
    return image, recipe


def test_weight_one_is_the_plain_prompt_and_other_weights_are_not(loaded, folder):
    plain, _ = render(loaded, folder, "a red apple, twemoji style")
    assert (render(loaded, folder, "a red (apple:1.0), twemoji style")[0] == plain).all()
    assert not (render(loaded, folder, "a red (apple:1.6), twemoji style")[0] == plain).all()


def test_words_after_token_75_change_the_image(loaded, folder):
    head = ", ".join(["a red apple"] * 30)  # 90+ tokens
    a, _ = render(loaded, folder, head + ", a blue whale")
    b, _ = render(loaded, folder, head + ", a green tulip")
    assert not (a == b).all()


def test_prompt_editing_switches_the_embeddings_at_its_step(loaded, folder):
    seen: list = []
    render(loaded, folder, "a [cat:dog:1] sitting", steps=4, seen=seen)
    cat: list = []
    render(loaded, folder, "a cat sitting", steps=1, seen=cat)
    dog: list = []
    render(loaded, folder, "a dog sitting", steps=1, seen=dog)
    assert len(seen) == 4
    # steps 0 and 1 use 'cat' (step <= 1), steps 2 and 3 'dog'; rows: [uncond, cond]
    assert [torch.equal(s[1], cat[0][1]) for s in seen] == [True, True, False, False]
    assert [torch.equal(s[1], dog[0][1]) for s in seen] == [False, False, True, True]


def test_alternation_takes_turns(loaded, folder):
    seen: list = []
    render(loaded, folder, "a [cat|dog]", steps=4, seen=seen)
    cat: list = []
    render(loaded, folder, "a cat", steps=1, seen=cat)
    assert [torch.equal(s[1], cat[0][1]) for s in seen] == [True, True, False, True]


def test_clip_skip_is_the_penultimate_layer_through_the_final_norm(loaded, folder):
    from engine.prompts.encode import encode_for_pipe

    pipe = loaded.pipe
    two = encode_for_pipe(pipe, "a cat", "", 7.0, "cpu", clip_skip=2).cond.z
    ids = pipe.tokenizer("a cat", padding="max_length", max_length=77, return_tensors="pt")
    with torch.no_grad():
        out = pipe.text_encoder(ids.input_ids, output_hidden_states=True)
        te = pipe.text_encoder
        want = getattr(te, "text_model", te).final_layer_norm(out.hidden_states[-2])
    assert torch.equal(two, want)
    assert not (
        render(loaded, folder, "a cat", clip_skip=2)[0] == render(loaded, folder, "a cat")[0]
    ).all()


def test_loras_weight_zero_stacking_and_clean_unloading(loaded, folder):
    base, recipe = render(loaded, folder, "a cat")
    assert recipe == {}
    assert (render(loaded, folder, "a cat <lora:ink:0>")[0] == base).all()
    ink, recipe = render(loaded, folder, "a cat <lora:ink:0.8>")
    assert not (ink == base).all() and recipe["lora_hashes"].startswith("ink: ")
    paper, _ = render(loaded, folder, "a cat <lyco:paper:0.8>")  # the PEFT file
    assert not (paper == base).all()
    both, recipe = render(loaded, folder, "a cat <lora:ink:0.8> <lora:paper:0.8>")
    assert not (both == ink).all() and not (both == paper).all()
    assert [p.split(":")[0] for p in recipe["lora_hashes"].split(", ")] == ["ink", "paper"]
    assert (render(loaded, folder, "a cat")[0] == base).all()  # unloaded: bit for bit


def test_missing_and_incompatible_loras_are_refused_by_name(loaded, folder):
    with pytest.raises(EngineError, match="'nope'.*not in any loras/ folder.*ink, paper"):
        check_prompts(["a <lora:nope:1>"], loaded.info, [folder])
    xl = ModelInfo(
        id="xl", name="My XL", format="single_file", path="/x.safetensors", architecture="sdxl"
    )
    with pytest.raises(EngineError, match="'ink' is made for Sfumato tiny; My XL is SDXL"):
        check_prompts(["a <lora:ink:1>"], xl, [folder])


def test_embeddings_by_name(loaded, folder):
    base, _ = render(loaded, folder, "a cat")
    styled, recipe = render(loaded, folder, "a cat, glowstyle")
    plain_word, _ = render(loaded, folder, "a cat, glow style")
    assert not (styled == plain_word).all()
    assert recipe["ti_hashes"].startswith("glowstyle: ")
    assert (render(loaded, folder, "a cat")[0] == base).all()  # the encoder is untouched
    with pytest.raises(EngineError, match="'oldstyle'.*pickle"):
        render(loaded, folder, "a cat, oldstyle")
