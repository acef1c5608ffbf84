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
        RESOURCES / "models" / "sfumato-tiny", local_files_only=True, safety_checker=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def other_pipes(tmp_path_factory):
    """arch -> tiny random pipeline with the real SD 2 / SDXL tokenizers and encoders."""
    import diffusers

    from tests.support.ldm_export import build_tiny_pipeline

    root = tmp_path_factory.mktemp("pipes")
    out = {}
    for arch, cls in (("sd2", diffusers.StableDiffusionPipeline),
                      ("sdxl", diffusers.StableDiffusionXLPipeline)):
        pipe = cls.from_pretrained(build_tiny_pipeline(arch, root / arch), local_files_only=True)
        pipe.set_progress_bar_config(disable=True)
        out[arch] = pipe
    return out


def _render(pipe, cfg: float, **kw):
    return pipe(num_inference_steps=2, guidance_scale=cfg, width=64, height=64,
                num_images_per_prompt=2, output_type="np",
                generator=[torch.Generator().manual_seed(s) for s in (1, 2)], **kw).images


def _same(pipe, prompt: str, negative: str, cfg: float) -> None:
    want = _render(pipe, cfg, prompt=prompt, negative_prompt=negative or None)
    got = _render(pipe, cfg, **encode_for_pipe(pipe, prompt, negative, cfg, "cpu").call_kwargs())
    assert (want == got).all(), (prompt, negative, cfg)


@pytest.mark.parametrize("prompt,negative,cfg", [(*PLAIN[0], 7.5), (*PLAIN[1], 7.5),
                                                 (*PLAIN[2], 7.5), (*PLAIN[0], 1.0)])
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
