"""The perturbation rules of Gao et al. 2023 (typo, glyph, phonetic), as people make them."""

import random

import pytest

from engine.robustness.perturb import (
    HOMOGLYPHS,
    KEYBOARD_NEIGHBOURS,
    glyph,
    perturb,
    phonetic,
    typo,
)
from engine.robustness.phonetic import (
    edit_distance,
    homophones,
    sounds_alike,
    spelling_variants,
)
from engine.robustness_protocol import planned_groups, replace_word, split_words

WORDS = ["red", "ball", "on", "green", "grass", "under", "blue", "sky", "lighthouse", "a", "cat"]


def test_keyboard_neighbours_are_adjacent_keys():
    assert set(KEYBOARD_NEIGHBOURS["s"]) == set("awedxz")
    assert set(KEYBOARD_NEIGHBOURS["q"]) == set("wa")
    assert all(k not in v for k, v in KEYBOARD_NEIGHBOURS.items())


@pytest.mark.parametrize("word", WORDS)
def test_typos_are_one_or_two_slips_away(word):
    seen = set()
    for seed in range(60):
        out = typo(word, random.Random(seed))
        assert out is not None and out != word
        assert 1 <= edit_distance(word, out) <= 2, (word, out)
        seen.add(out)
    assert len(seen) > 3 or len(word) == 1  # many different slips, not one fixed rewrite


def test_typos_include_the_kinds_people_make():
    outs = {typo("grass", random.Random(s)) for s in range(400)}
    assert any(" " in o for o in outs)  # a stray space: "gr ass"
    assert any(len(o) == 6 and " " not in o for o in outs)  # a doubled letter
    assert any(len(o) == 4 for o in outs)  # a dropped letter
    assert "garss" in outs or "rgass" in outs or "grsas" in outs  # two letters swapped
    assert any(o[0] in KEYBOARD_NEIGHBOURS["g"] and o[1:] == "rass" for o in outs)


@pytest.mark.parametrize("word", WORDS)
def test_glyphs_look_alike(word):
    for seed in range(30):
        out = glyph(word, random.Random(seed))
        assert out is not None and out != word and len(out) == len(word)
        diff = [(a, b) for a, b in zip(word, out, strict=True) if a != b]
        assert len(diff) == 1
        a, b = diff[0]
        assert b == a.swapcase() or b in HOMOGLYPHS[a]


def test_phonetic_uses_homophones_then_spelling_rules():
    assert homophones("red")[0] == "read"  # the paper's example, closest spelling first
    assert "see" in homophones("sea") and "sea" not in homophones("sea")
    assert "blew" in sounds_alike("blue")
    assert spelling_variants("photo")[0] == "foto"
    assert "smilin" in sounds_alike("smiling")  # not in CMUdict's homophones: a rule
    assert phonetic("Red", random.Random(0))[0] == "R"  # the capital is kept
    assert sounds_alike("r2d2") == []


def test_perturb_is_reproducible_per_seed():
    assert perturb("green", "typo", 7) == perturb("green", "typo", 7)
    assert len({perturb("green", "typo", s) for s in range(20)}) > 3


def test_words_and_replacement():
    prompt = "A red ball, on green grass (sci-fi)"
    words = split_words(prompt)
    assert [w.text for w in words] == ["A", "red", "ball", "on", "green", "grass", "sci-fi"]
    assert replace_word(prompt, words[1], "rde") == "A rde ball, on green grass (sci-fi)"
    assert replace_word(prompt, words[2], "") == "A red, on green grass (sci-fi)"
    assert replace_word(prompt, words[0], "") == "red ball, on green grass (sci-fi)"
    assert replace_word("cat", split_words("cat")[0], "") == ""
    assert planned_groups(7, ["typo", "glyph"], 3) == 1 + 7 + 6
    assert planned_groups(2, ["typo"], None) == 1 + 2 + 2
