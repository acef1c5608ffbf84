"""What the active model knows how to draw, as the prompt box uses it (no widgets here).

A model may ship a vocabulary (``vocabulary.json`` in its folder; the engine reports it in
/v1/models as ``ModelInfo.vocabulary``): the built-in model does, since it knows only a few
hundred emoji names, two styles and ten colours. From it come the prompt placeholder, the
"Prompt ideas" menu, completion candidates and the hint for a prompt that names nothing the
model knows. Models without one (Stable Diffusion weights) get the general placeholder and no
hint: they read any prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from engine.protocol import ModelInfo, PromptVocabulary

#: The placeholder for models that read any prompt.
GENERAL_PLACEHOLDER = "A lighthouse at dusk, oil painting, soft sfumato light…"

#: Completion starts after this many typed characters of a phrase.
MIN_PREFIX = 2


@dataclass(frozen=True)
class PromptGuide:
    """A model's vocabulary, ready for the prompt box."""

    model_name: str
    vocabulary: PromptVocabulary

    @classmethod
    def for_model(cls, model: ModelInfo | None) -> PromptGuide | None:
        if model is None or model.vocabulary is None or not model.vocabulary.subjects:
            return None
        return cls(model.name or model.id, model.vocabulary)

    @property
    def placeholder(self) -> str:
        v = self.vocabulary
        return v.examples[0] if v.examples else v.subjects[0]

    @property
    def ideas(self) -> list[str]:
        return list(self.vocabulary.examples)

    @cached_property
    def completions(self) -> list[str]:
        """Every phrase a prompt is made of: names, '<style> style', 'on a <colour> background'."""
        v = self.vocabulary
        return [
            *v.subjects,
            *(f"{s} style" for s in v.styles),
            *(f"on a {c} background" for c in v.backgrounds),
        ]

    def symbol(self, phrase: str) -> str:
        """The glyph of a subject (for the completion list), or ""."""
        v = self.vocabulary
        try:
            return v.symbols[v.subjects.index(phrase)]
        except (ValueError, IndexError):
            return ""

    def matches(self, prefix: str) -> list[str]:
        """Completions that start with ``prefix`` (case-insensitive), or at a word of it."""
        p = prefix.strip().lower()
        if len(p) < MIN_PREFIX:
            return []
        starts = [c for c in self.completions if c.lower().startswith(p)]
        inner = [
            c
            for c in self.completions
            if c not in starts and re.search(r"\b" + re.escape(p), c.lower())
        ]
        return starts + inner

    @cached_property
    def _subject_pattern(self) -> re.Pattern[str]:
        names = sorted(self.vocabulary.subjects, key=len, reverse=True)
        return re.compile(
            r"(?<![\w-])(" + "|".join(map(re.escape, names)) + r")(?![\w-])", re.IGNORECASE
        )

    def known_subjects(self, prompt: str) -> list[str]:
        """The names the prompt uses, as whole words (longest first where names overlap)."""
        return [m.group(1).lower() for m in self._subject_pattern.finditer(prompt)]

    def hint(self, prompt: str) -> str:
        """A quiet line under the prompt box when the prompt names nothing the model knows."""
        if not prompt.strip() or self.known_subjects(prompt):
            return ""
        v = self.vocabulary
        examples = [s for s in ("rocket", "cat face", "pizza") if s in v.subjects] or v.subjects[:3]
        quoted = ", ".join(f"“{s}”" for s in examples[:2])
        return (
            f"{self.model_name} knows {len(v.subjects)} emoji names (such as {quoted}), "
            "not this prompt. Try one of the Prompt ideas, or start typing a name."
        )


def fragment_at(text: str, cursor: int) -> tuple[int, str]:
    """The phrase being typed: from after the last comma before ``cursor`` up to it, with its
    leading spaces skipped; (its start offset, its text)."""
    start = text.rfind(",", 0, cursor) + 1
    while start < cursor and text[start].isspace():
        start += 1
    return start, text[start:cursor]
