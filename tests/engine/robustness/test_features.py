"""The built-in model's MMD features tell two prompts apart and do not tell two seed sets of
one prompt apart (issue 22, point 2)."""

import numpy as np
import pytest

from engine.robustness.features import ClassifierFeatures
from engine.robustness.mmd import two_sample_test


@pytest.fixture(scope="module")
def tiny_pipe():
    from engine.training.evaluate import load_pipeline

    return load_pipeline()


def _images(pipe, prompt: str, seeds: list[int]) -> np.ndarray:
    from engine.training.evaluate import generate

    return generate(pipe, [prompt] * len(seeds), seeds, steps=15)


def test_mmd_separates_prompts_not_seed_sets(tiny_pipe):
    features = ClassifierFeatures()
    n = 8
    a = "red apple, noto style on a yellow background"
    b = "blue car, twemoji style on a black background"
    fa1 = features(_images(tiny_pipe, a, list(range(n))))
    fa2 = features(_images(tiny_pipe, a, list(range(100, 100 + n))))
    fb = features(_images(tiny_pipe, b, list(range(n))))
    same = two_sample_test(fa1, fa2, 1000)
    other = two_sample_test(fa1, fb, 1000)
    assert fa1.shape == (n, 256)
    assert same.p_value > 0.2, same  # two seed sets of one prompt: not separated
    assert other.p_value < 0.01, other  # two prompts: separated
    assert other.mmd2 > 2 * same.mmd2
