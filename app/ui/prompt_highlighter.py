"""Colours for the prompt language in the prompt boxes: weights, BREAK, LoRA tags.

Follows the rules of docs/prompts.md closely enough to show what the engine will read:
``(…)`` and ``(…:w)`` (stronger), ``[…]`` (weaker) and prompt editing ``[a:b:n]``, the
weights and step numbers, ``BREAK``, ``<lora:name:w>``; ``\\(`` is a plain bracket. Bracket depth
carries over from line to line (the block state holds it).
"""

from __future__ import annotations

import re

from PySide6.QtGui import QColor, QFont, QSyntaxHighlighter, QTextCharFormat

_TAG = re.compile(r"<(?:lora|lyco|hypernet):[^<>]*>")
_BREAK = re.compile(r"\bBREAK\b")
_NUMBER = re.compile(r":\s*[+-]?(?:\d+\.?\d*|\.\d+)\s*(?=[)\]])")


def _format(color: str, *, bold: bool = False, italic: bool = False) -> QTextCharFormat:
    f = QTextCharFormat()
    f.setForeground(QColor(color))
    if bold:
        f.setFontWeight(QFont.Weight.Bold)
    f.setFontItalic(italic)
    return f


class PromptHighlighter(QSyntaxHighlighter):
    """Attach with ``PromptHighlighter(edit.document())``."""

    #: Mid-tone colours that read on the dark and the light theme alike.
    STRONGER = _format("#d08a1a")
    WEAKER = _format("#6f8fbf", italic=True)
    BRACKET = _format("#a0a0a0", bold=True)
    WEIGHT = _format("#d08a1a", bold=True)
    BREAK = _format("#c2408f", bold=True)
    TAG = _format("#1f9e8f", bold=True)

    def highlightBlock(self, text: str) -> None:
        state = max(self.previousBlockState(), 0)
        rounds, squares = divmod(state, 1000)
        editing, separators = _editing_brackets(text)
        plain_squares = 0  # open [ ] that weaken (not prompt editing [a:b:n] or [a|b])
        opened: list[bool] = []
        i = 0
        while i < len(text):
            c = text[i]
            if c == "\\" and i + 1 < len(text):
                i += 2
                continue
            if c == "(":
                rounds += 1
                self.setFormat(i, 1, self.BRACKET)
            elif c == "[":
                squares += 1
                weakens = i not in editing
                opened.append(weakens)
                plain_squares += weakens
                self.setFormat(i, 1, self.BRACKET)
            elif c == ")" and rounds:
                rounds -= 1
                self.setFormat(i, 1, self.BRACKET)
            elif c == "]" and squares:
                squares -= 1
                plain_squares -= opened.pop() if opened else 0
                self.setFormat(i, 1, self.BRACKET)
            elif i in separators:
                self.setFormat(i, 1, self.BRACKET)
            elif rounds and not plain_squares:
                self.setFormat(i, 1, self.STRONGER)
            elif plain_squares or (squares and not opened):
                self.setFormat(i, 1, self.WEAKER)
            i += 1
        for pattern, fmt in ((_NUMBER, self.WEIGHT), (_BREAK, self.BREAK), (_TAG, self.TAG)):
            for m in pattern.finditer(text):
                self.setFormat(m.start(), m.end() - m.start(), fmt)
        self.setCurrentBlockState(rounds * 1000 + squares)


def _editing_brackets(text: str) -> tuple[set[int], set[int]]:
    """Positions of each '[' that opens prompt editing or alternation (a ':' or '|' at its own
    level), and of those separators."""
    out: set[int] = set()
    separators: set[int] = set()
    stack: list[int] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c in "([":
            stack.append(i)
        elif c in ")]" and stack:
            stack.pop()
        elif c in ":|" and stack and text[stack[-1]] == "[":
            out.add(stack[-1])
            separators.add(i)
        i += 1
    return out, separators
