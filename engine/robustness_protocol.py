"""The robustness part of the wire protocol (issue 22): how fragile is a prompt?

Pydantic and the standard library only, like :mod:`engine.protocol`, which holds the job spec
(``prompt_robustness``, :class:`engine.protocol.RobustnessParams`) and re-exports every name here;
the app imports them from there. See ``docs/robustness.md``.

A ``prompt_robustness`` job renders ``samples`` images with shared seeds for the prompt (group 0),
for the prompt with each word deleted (the importance groups), and for perturbations of the most
important words by each rule (typo, glyph, phonetic: Gao et al. 2023, "Evaluating the Robustness
of Text-to-image Diffusion Models against Real-world Attacks"). Result image ``index`` is
``group * samples + i`` (seed ``seed + i``), so a client places every image without asking.
``Job.robustness`` holds the :class:`RobustnessReport`; it grows as groups finish.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RULES: tuple[str, ...] = ("typo", "glyph", "phonetic")
RULE_LABELS = {
    "typo": "Typo",
    "glyph": "Look-alike letters",
    "phonetic": "Sounds alike",
}
RULE_HELP = {
    "typo": "Slips of the keyboard at edit distance 1–2: a neighbouring key, a doubled or "
    "dropped letter, two letters swapped, a stray space (red → rde, sky → skky).",
    "glyph": "Letters that look alike: a capital, or a look-alike character from another "
    "alphabet (on → On, o → Cyrillic о, l → 1).",
    "phonetic": "A word that sounds the same or nearly so (red → read, sea → see), from the "
    "CMU Pronouncing Dictionary, or a spelling rule where it has none.",
}
Rule = Literal["typo", "glyph", "phonetic"]
GroupKind = Literal["original", "deletion", "perturbation"]

#: A word: letters, digits, apostrophes and inner hyphens ("don't", "sci-fi").
_WORD = re.compile(r"[^\W_](?:[\w'’-]*[^\W_])?")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromptWord(_Model):
    index: int = Field(description="0-based position among the prompt's words")
    text: str
    start: int = Field(description="Character offset in the prompt")
    end: int


def split_words(prompt: str) -> list[PromptWord]:
    """The prompt's words, in order, with their character spans (the app and the engine agree
    on them: the app shades these spans, the engine deletes and perturbs them)."""
    return [
        PromptWord(index=i, text=m.group(), start=m.start(), end=m.end())
        for i, m in enumerate(_WORD.finditer(prompt))
    ]


def replace_word(prompt: str, word: PromptWord, text: str) -> str:
    """``prompt`` with ``word`` replaced by ``text``; deleting (``text == ""``) also removes one
    space beside it so that no double space is left."""
    before, after = prompt[: word.start], prompt[word.end :]
    if not text:
        if before.endswith(" ") and (after.startswith((" ", ",", ".")) or not after):
            before = before[:-1]
        elif after.startswith(" ") and not before:
            after = after[1:]
    return before + text + after


def planned_groups(n_words: int, rules: list[str] | tuple[str, ...], top_k: int | None) -> int:
    """How many image groups a probe renders: the prompt, one per deleted word, one per
    (chosen word, rule)."""
    chosen = n_words if top_k is None else min(top_k, n_words)
    return 1 + n_words + chosen * len(rules)


class WordImportance(_Model):
    """How much the image distribution moves when the word is deleted (the paper's ranking)."""

    index: int
    word: str
    group: int = Field(description="Image group of the prompt without this word")
    mmd2: float | None = Field(
        None, description="MMD² against the prompt's images; None until its group is rendered"
    )
    p_value: float | None = None
    importance: float | None = Field(None, description="mmd2 scaled to [0, 1] over the words")


class Perturbation(_Model):
    group: int = Field(description="Image group of the perturbed prompt")
    word_index: int
    rule: Rule
    original: str = Field(description="The word as written")
    replaced: str = Field(description="The word as perturbed")
    prompt: str
    mmd2: float | None = None
    p_value: float | None = Field(None, description="Permutation test of 'same distribution'")


class RobustnessGroup(_Model):
    group: int
    kind: GroupKind
    prompt: str


class RobustnessReport(_Model):
    prompt: str
    samples: int = Field(description="Images per group (shared seeds seed … seed+samples-1)")
    seed: int
    features: str = Field(description="The image features MMD is measured in, and why")
    kernel: str = Field("", description="The kernel and its bandwidth")
    permutations: int
    groups: list[RobustnessGroup] = []
    words: list[WordImportance] = []
    perturbations: list[Perturbation] = []
    done: bool = False

    def most_robust(self) -> Perturbation | None:
        """The perturbation that moved the images least (lowest MMD², highest p)."""
        done = [p for p in self.perturbations if p.mmd2 is not None]
        return min(done, key=lambda p: (p.mmd2, -(p.p_value or 0.0))) if done else None
