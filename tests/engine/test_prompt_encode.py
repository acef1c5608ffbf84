"""engine.prompts.encode is the one way into the text encoders: on plain prompts (no weights,
no BREAK, ≤ 75 tokens) every job's images are bit-identical to diffusers' own prompt encoding.

The reference is ``pipe(prompt=...)`` itself — the call the jobs made before they passed
embeddings — on the built-in model and on tiny SD 2 and SDXL pipelines (both text encoders,
pooled embeddings, the zeroed empty negative).
"""

from __future__ import annotations

import pytest
import torch

from engine.models.registry import RESOURCES
from engine.prompts.encode import embed_prompts, encode_for_pipe, text_encoders

PLAIN = [("a red apple, twemoji style", "blurry"), ("a cat", ""), ("", "")]


@pytest.fixture(scope="module")
def tiny_pipe():
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        RESOURCES / "models" / "sfumato-tiny",
        local_files_only=True,
        safety_checker=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def other_pipes(tmp_path_factory):
    """arch -> tiny random pipeline with the real SD 2 / SDXL tokenizers and encoders."""
    import diffusers

    from tests.support.ldm_export import build_tiny_pipeline

    root = tmp_path_factory.mktemp("pipes")
    out = {}
    for arch, cls in (
        ("sd2", diffusers.StableDiffusionPipeline),
        ("sdxl", diffusers.StableDiffusionXLPipeline),
    ):
        pipe = cls.from_pretrained(build_tiny_pipeline(arch, root / arch), local_files_only=True)
        pipe.set_progress_bar_config(disable=True)
        out[arch] = pipe
    return out


def _render(pipe, cfg: float, **kw):
    return pipe(
        num_inference_steps=2,
        guidance_scale=cfg,
        width=64,
        height=64,
        num_images_per_prompt=2,
        output_type="np",
        generator=[torch.Generator().manual_seed(s) for s in (1, 2)],
        **kw,
    ).images


def _same(pipe, prompt: str, negative: str, cfg: float) -> None:
    want = _render(pipe, cfg, prompt=prompt, negative_prompt=negative or None)
    got = _render(pipe, cfg, **encode_for_pipe(pipe, prompt, negative, cfg, "cpu").call_kwargs())
    assert (want == got).all(), (prompt, negative, cfg)


@pytest.mark.parametrize(
    "prompt,negative,cfg", [(*PLAIN[0], 7.5), (*PLAIN[1], 7.5), (*PLAIN[2], 7.5), (*PLAIN[0], 1.0)]
)
def test_built_in_model_images_are_bit_identical(tiny_pipe, prompt, negative, cfg):
    _same(tiny_pipe, prompt, negative, cfg)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["sd2", "sdxl"])
def test_sd2_and_sdxl_images_are_bit_identical(other_pipes, arch):
    _same(other_pipes[arch], *PLAIN[0], 5.0)
    _same(other_pipes[arch], *PLAIN[1], 5.0)  # SDXL: the empty negative is zeros


def test_embed_prompts_matches_diffusers(tiny_pipe):
    texts = ["a cat", "a red apple, twemoji style"]
    want, _ = tiny_pipe.encode_prompt(texts, "cpu", 1, False)
    got = embed_prompts(text_encoders(tiny_pipe), texts, "cpu")
    assert torch.equal(want, got)


@pytest.mark.slow
def test_sdxl_long_weighted_prompt_pools_its_first_chunk(other_pipes):
    """SDXL: both encoders per chunk (concatenated channels), the pooled output of the second
    encoder from the first chunk only, as A1111 takes it; editing swaps pooled embeddings too."""
    pipe = other_pipes["sdxl"]
    head = "a (red:1.3) cat"
    long = head + ", " + ", ".join(["a green tree"] * 30)
    full = encode_for_pipe(pipe, long, "", 5.0, "cpu")
    first = encode_for_pipe(pipe, head + ", " + ", ".join(["a green tree"] * 3), "", 5.0, "cpu")
    assert full.cond.z.shape[1] == 2 * 77 and full.cond.z.shape[2] == (
        pipe.text_encoder.config.hidden_size + pipe.text_encoder_2.config.hidden_size
    )
    assert full.uncond.z.shape == full.cond.z.shape  # the empty negative padded (zeros)
    assert not full.uncond.z.any()
    assert not torch.equal(full.cond.pooled, first.cond.pooled)  # different first chunks…
    same_head = encode_for_pipe(pipe, long + ", a boat", "", 5.0, "cpu")
    assert torch.equal(full.cond.pooled, same_head.cond.pooled)  # …pooled from chunk 0 only
    edited = encode_for_pipe(pipe, "a [cat:dog:1]", "", 5.0, "cpu", steps=3)
    assert edited.tensor_inputs == ["prompt_embeds", "add_text_embeds"]
    assert not torch.equal(edited.at(0)[2], edited.at(2)[2])
    _render(pipe, 5.0, **full.call_kwargs())  # the pipeline takes them
