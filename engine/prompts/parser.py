"""A1111's prompt language, parsed: extra-network tags, prompt editing, alternation, emphasis.

Written from AUTOMATIC1111's documented behaviour (its doctests and wiki), not from its code, and
pinned by ``tests/engine/test_prompt_parser.py`` on those examples. Three passes, in A1111's order:

1. :func:`extract_networks` takes ``<lora:name:w>`` (and ``<lyco:…>``) tags out of the text.
2. :func:`prompt_schedule` resolves prompt editing ``[a:b:when]`` and alternation ``[a|b]`` into
   one plain prompt per range of sampling steps. A prompt that does not parse is used as it is.
3. :func:`parse_emphasis` turns one of those prompts into (text, weight) runs: ``(x)`` ×1.1,
   ``[x]`` ÷1.1, ``(x:w)`` ×w, ``\\(`` a literal bracket, ``BREAK`` a chunk break (weight −1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROUND, SQUARE = 1.1, 1 / 1.1
BREAK = "BREAK"
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.DOTALL)
_WEIGHT = re.compile(r":([+-]?[.\d]+)\)")
_NUMBER = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\]")
_NETWORK = re.compile(r"<(\w+):([^>]+)>")
_EMPHASIS_SPECIALS = "\\()[]:"


# --------------------------------------------------------------------------- extra networks


@dataclass(frozen=True)
class NetworkTag:
    """``<kind:name:te[:unet]>`` — a LoRA (kind ``lora``/``lyco``) named in the prompt."""

    kind: str
    name: str
    te_weight: float = 1.0
    unet_weight: float = 1.0
    text: str = ""  # the tag as written

    @property
    def weight(self) -> float:
        return self.unet_weight


def extract_networks(prompt: str) -> tuple[str, list[NetworkTag]]:
    """The prompt without its ``<kind:…>`` tags, and the tags (A1111 removes them entirely).

    ``<lora:name>`` weighs 1; ``<lora:name:w>`` w for both the text encoder and the UNet;
    ``<lora:name:te:unet>`` each its own. A weight that is not a number is an error.
    """
    tags: list[NetworkTag] = []

    def take(m: re.Match) -> str:
        kind, args = m.group(1), m.group(2).split(":")
        try:
            te = float(args[1]) if len(args) > 1 and args[1].strip() else 1.0
            unet = float(args[2]) if len(args) > 2 and args[2].strip() else te
        except ValueError:
            raise ValueError(
                f"{m.group(0)}: the weight must be a number, e.g. <{kind}:{args[0]}:0.8>"
            ) from None
        tags.append(NetworkTag(kind, args[0].strip(), te, unet, m.group(0)))
        return ""

    return _NETWORK.sub(take, prompt), tags


# --------------------------------------------------------------------------- schedules


class _NoParse(Exception):
    """The prompt is outside the editing grammar: A1111 then uses it unchanged."""


@dataclass
class _Scheduled:
    before: list | None
    after: list
    when: float


@dataclass
class _Alternate:
    options: list[list]


class _ScheduleParser:
    """Recursive descent over A1111's editing grammar. A node list holds str, _Scheduled and
    _Alternate; brackets of emphasis are kept as text around their (resolved) contents."""

    def __init__(self, text: str) -> None:
        self.s = text

    def top(self) -> list:
        nodes, i = [], 0
        while i < len(self.s):
            c = self.s[i]
            if c in "([":
                try:
                    node, i = self.bracket(i)
                    nodes.append(node)
                    continue
                except _NoParse:
                    pass  # at the top level a bracket that opens nothing is a literal
            if c in "()[]:":
                nodes.append(c)
                i += 1
                continue
            part, i = self.inner(i)
            if not part:  # '|' or a dangling backslash: the whole prompt is literal
                raise _NoParse
            nodes += part
        return nodes

    def inner(self, i: int) -> tuple[list, int]:
        """A prompt: text and bracket constructs up to one of ``) ] : |`` or the end."""
        nodes: list = []
        while i < len(self.s):
            c = self.s[i]
            if c in "([":
                node, i = self.bracket(i)
                nodes.append(node)
            elif c in ")]:|":
                break
            else:
                j = i
                while j < len(self.s) and self.s[j] not in "()[]:|":
                    if self.s[j] == "\\":
                        if j + 1 >= len(self.s) or self.s[j + 1] == "\n":
                            raise _NoParse
                        j += 1
                    j += 1
                nodes.append(self.s[i:j])
                i = j
        return nodes, i

    def expect(self, i: int, char: str) -> int:
        if i >= len(self.s) or self.s[i] != char:
            raise _NoParse
        return i + 1

    def bracket(self, i: int):
        if self.s[i] == "(":
            first, j = self.inner(i + 1)
            if j < len(self.s) and self.s[j] == ":":
                second, j = self.inner(j + 1)
                return ["(", *first, ":", *second, ")"], self.expect(j, ")")
            return ["(", *first, ")"], self.expect(j, ")")
        first, j = self.inner(i + 1)
        if j >= len(self.s):
            raise _NoParse
        if self.s[j] == "]":
            return ["[", *first, "]"], j + 1
        if self.s[j] == "|":
            options = [first]
            while j < len(self.s) and self.s[j] == "|":
                option, j = self.inner(j + 1)
                options.append(option)
            return _Alternate(options), self.expect(j, "]")
        # ':' — [after:when] or [before:after:when]
        m = _NUMBER.match(self.s, j + 1)
        if m:
            return _Scheduled(None, first, float(m.group(1))), m.end()
        second, j = self.inner(j + 1)
        if j >= len(self.s) or self.s[j] != ":":
            raise _NoParse
        m = _NUMBER.match(self.s, j + 1)
        if not m:
            raise _NoParse
        return _Scheduled(first, second, float(m.group(1))), m.end()


def _walk(nodes: list):
    for n in nodes:
        if isinstance(n, _Scheduled):
            yield n
            yield from _walk(n.before or [])
            yield from _walk(n.after)
        elif isinstance(n, _Alternate):
            yield n
            for o in n.options:
                yield from _walk(o)
        elif isinstance(n, list):
            yield from _walk(n)


def _text_at(nodes: list, step: int) -> str:
    out = []
    for n in nodes:
        if isinstance(n, str):
            out.append(n)
        elif isinstance(n, _Scheduled):
            out.append(_text_at((n.before or []) if step <= n.when else n.after, step))
        elif isinstance(n, _Alternate):
            out.append(_text_at(n.options[(step - 1) % len(n.options)], step))
        else:
            out.append(_text_at(n, step))
    return "".join(out)


def prompt_schedule(prompt: str, steps: int) -> list[tuple[int, str]]:
    """[(end_at_step, prompt)] in step order: the prompt used up to and including each step.

    ``[a:b:when]`` is ``a`` until ``when`` then ``b`` (``when`` < 1 is a fraction of
    ``steps``), ``[a:when]`` adds ``a`` after ``when``, ``[a::when]`` removes it; ``[a|b|…]``
    takes the next option every step. Sampling step ``s`` (0-based) uses the first entry with
    ``s <= end_at_step``, as A1111 does.
    """
    try:
        nodes = _ScheduleParser(prompt).top()
    except _NoParse:
        return [(steps, prompt)]
    ends = {steps}
    for node in _walk(nodes):
        if isinstance(node, _Scheduled):
            when = node.when * steps if node.when < 1 else node.when
            node.when = min(steps, int(when))
            ends.add(node.when)
        else:
            ends.update(range(1, steps + 1))
    return [(end, _text_at(nodes, end)) for end in sorted(ends)]


def entry_at(schedule: list[tuple[int, object]], step: int) -> int:
    """Index of the schedule entry that sampling step ``step`` (0-based) uses."""
    for k, (end, _) in enumerate(schedule):
        if step <= end:
            return k
    return 0


# --------------------------------------------------------------------------- emphasis


def parse_emphasis(text: str) -> list[tuple[str, float]]:
    """[(text, weight)] runs of one prompt; ``("BREAK", -1)`` marks a chunk break.

    Unclosed brackets still weigh their text; unmatched closing ones are text; ``\\(``, ``\\)``,
    ``\\[``, ``\\]`` and ``\\\\`` are the literal characters; adjacent runs of equal weight merge.
    """
    runs: list[list] = []
    rounds: list[int] = []
    squares: list[int] = []

    def scale(start: int, factor: float) -> None:
        for run in runs[start:]:
            run[1] *= factor

    def plain(chunk: str) -> None:
        for k, part in enumerate(_BREAK.split(chunk)):
            if k:
                runs.append([BREAK, -1])
            runs.append([part, 1.0])

    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 < n and text[i + 1] in "()[]\\":
                runs.append([text[i + 1], 1.0])
                i += 2
            else:
                runs.append(["", 1.0])  # a lone backslash disappears
                i += 1
        elif c == "(":
            rounds.append(len(runs))
            i += 1
        elif c == "[":
            squares.append(len(runs))
            i += 1
        elif c == ":":
            m = _WEIGHT.match(text, i)
            weight = _float(m.group(1)) if m else None
            if m and rounds and weight is not None:
                scale(rounds.pop(), weight)
                i = m.end()
            elif m and weight is not None:
                plain(m.group(0))
                i = m.end()
            else:
                plain(":")
                i += 1
        elif c == ")" and rounds:
            scale(rounds.pop(), ROUND)
            i += 1
        elif c == "]" and squares:
            scale(squares.pop(), SQUARE)
            i += 1
        elif c in ")]":
            plain(c)
            i += 1
        else:
            j = i
            while j < n and text[j] not in _EMPHASIS_SPECIALS:
                j += 1
            plain(text[i:j])
            i = j
    for start in rounds:
        scale(start, ROUND)
    for start in squares:
        scale(start, SQUARE)
    if not runs:
        runs = [["", 1.0]]
    merged = [runs[0]]
    for run in runs[1:]:
        if run[1] == merged[-1][1]:
            merged[-1][0] += run[0]
        else:
            merged.append(run)
    return [(t, w) for t, w in merged]


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
