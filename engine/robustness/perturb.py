"""The perturbations people make by accident (Gao et al. 2023, §3.1: typo, glyph, phonetic).

Each rule maps one word to a perturbed word, drawn with a seeded :class:`random.Random` so a
probe is reproducible. The rules, as the paper describes real-world errors:

- **typo** — keyboard slips at edit distance 1–2 (two slips with probability
  :data:`TWO_TYPOS`): a QWERTY neighbour instead of the letter, a doubled letter ("skky"), a
  dropped letter, two neighbours swapped ("rde"), a stray space inside the word ("ca t");
- **glyph** — characters that look alike: a changed capital ("On"), or a letter replaced by its
  look-alike from Cyrillic/Greek or a digit (o → о, l → 1);
- **phonetic** — a word that sounds the same (:mod:`engine.robustness.phonetic`): "red" → "read".

Every rule returns a word different from the input, or ``None`` when it has nothing to offer
(a phonetic rule for a word with no homophone and no spelling rule).
"""

from __future__ import annotations

import random
from collections.abc import Callable

TWO_TYPOS = 0.3

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
#: QWERTY neighbours of each letter (same row and the rows above and below, by column).
KEYBOARD_NEIGHBOURS: dict[str, str] = {}
for _r, _row in enumerate(_ROWS):
    for _c, _ch in enumerate(_row):
        near = []
        for dr in (-1, 0, 1):
            rr = _r + dr
            if not 0 <= rr < len(_ROWS):
                continue
            for dc in (-1, 0, 1) if dr == 0 else (0, 1) if dr < 0 else (-1, 0):
                cc = _c + dc
                if (dr, dc) != (0, 0) and 0 <= cc < len(_ROWS[rr]):
                    near.append(_ROWS[rr][cc])
        KEYBOARD_NEIGHBOURS[_ch] = "".join(near)

#: Look-alike characters (Unicode confusables): Latin letter → characters drawn the same or
#: nearly so in common fonts. A text encoder's tokenizer sees entirely different tokens.
HOMOGLYPHS: dict[str, str] = {
    "a": "а",
    "c": "с",
    "e": "е",
    "i": "і1",
    "j": "ј",
    "l": "1І",
    "o": "о0",
    "p": "р",
    "s": "ѕ",
    "x": "х",
    "y": "у",
    "A": "АΑ",
    "B": "ВΒ",
    "C": "С",
    "E": "ЕΕ",
    "H": "НΗ",
    "I": "Іl",
    "K": "КΚ",
    "M": "МΜ",
    "N": "Ν",
    "O": "О0Ο",
    "P": "РΡ",
    "S": "Ѕ",
    "T": "ТΤ",
    "X": "ХΧ",
    "Y": "Υ",
    "Z": "Ζ",
}


def _one_typo(word: str, rng: random.Random) -> str:
    ops = ["neighbour", "double", "swap", "drop", "space"]
    if len(word) < 2:
        ops = ["neighbour", "double"]
    elif len(word) < 3:
        ops.remove("space")
    op = rng.choice(ops)
    if op == "neighbour":
        letters = [i for i, ch in enumerate(word) if ch.lower() in KEYBOARD_NEIGHBOURS]
        if not letters:
            op = "double"
        else:
            i = rng.choice(letters)
            new = rng.choice(KEYBOARD_NEIGHBOURS[word[i].lower()])
            return word[:i] + (new.upper() if word[i].isupper() else new) + word[i + 1 :]
    if op == "double":
        i = rng.randrange(len(word))
        return word[: i + 1] + word[i] + word[i + 1 :]
    if op == "swap":
        pairs = [i for i in range(len(word) - 1) if word[i] != word[i + 1]]
        if pairs:
            i = rng.choice(pairs)
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        i = rng.randrange(len(word))
        return word[: i + 1] + word[i] + word[i + 1 :]
    if op == "drop":
        i = rng.randrange(len(word))
        return word[:i] + word[i + 1 :]
    i = rng.randrange(1, len(word) - 1)  # space: never at either end, it would vanish
    return word[:i] + " " + word[i:]


def typo(word: str, rng: random.Random) -> str | None:
    """One or two keyboard slips (edit distance 1–2)."""
    for _ in range(8):
        out = _one_typo(word, rng)
        if rng.random() < TWO_TYPOS and len(out.replace(" ", "")) > 1:
            out = _one_typo(out, rng)
        if out and out != word:
            return out
    return None


def glyph(word: str, rng: random.Random) -> str | None:
    """A changed capital or one look-alike character."""
    options: list[str] = []
    first = word[0]
    if first.isalpha():
        options.append((first.lower() if first.isupper() else first.upper()) + word[1:])
    for i, ch in enumerate(word):
        for alike in HOMOGLYPHS.get(ch, ""):
            options.append(word[:i] + alike + word[i + 1 :])
    options = [o for o in options if o != word]
    return rng.choice(options) if options else None


def phonetic(word: str, rng: random.Random) -> str | None:
    """A word that sounds the same (CMUdict), or a spelling rule's variant."""
    from engine.robustness.phonetic import sounds_alike

    options = sounds_alike(word)
    if not options:
        return None
    out = rng.choice(options[:3])  # the three closest spellings: "red" → "read", not "wredd"
    if word[:1].isupper():
        out = out[:1].upper() + out[1:]
    if word.isupper() and len(word) > 1:
        out = out.upper()
    return out


RULE_FUNCTIONS: dict[str, Callable[[str, random.Random], str | None]] = {
    "typo": typo,
    "glyph": glyph,
    "phonetic": phonetic,
}


def perturb(word: str, rule: str, seed: int) -> str | None:
    """``word`` perturbed by ``rule`` with a generator seeded by ``seed`` and the word itself,
    so the same word gets the same perturbation in every probe with that seed."""
    rng = random.Random(f"{seed}:{rule}:{word}")
    return RULE_FUNCTIONS[rule](word, rng)
