"""What the Prompt panel shows about the prompt language: tokens per chunk and installed LoRAs.

Plain state and text rules (no widgets): the counts come from the engine's tokenizer
(``POST /v1/prompts/tokens``, see docs/prompts.md), the LoRAs from ``GET /v1/loras``.
"""

from __future__ import annotations

import re

from engine.prompts_protocol import LoraInfo, TokenCount

from .observable import Observable, Property

#: ``<lora:`` (or ``<lyco:``) and the part of a name typed so far, right before the cursor.
_TAG_BEING_TYPED = re.compile(r"<(lora|lyco):([^:<>]*)$")


class PromptTools(Observable):
    loras = Property[list]([], doc="LoraInfo of every installed LoRA")
    prompt_tokens = Property[object](None, doc="TokenCount of the prompt, or None")
    negative_tokens = Property[object](None, doc="TokenCount of the negative prompt, or None")


def token_label(count: TokenCount | None) -> str:
    """A1111's counter: "83 / 150" (tokens / what its chunks hold)."""
    return "" if count is None else f"{count.tokens} / {count.limit}"


def token_tooltip(count: TokenCount | None) -> str:
    if count is None:
        return ""
    parts = ", ".join(str(n) for n in count.chunks)
    return (
        f"{count.tokens} tokens in {len(count.chunks)} chunk"
        f"{'s' if len(count.chunks) != 1 else ''} of 75 ({parts}). Words after a chunk "
        "start the next one; BREAK starts one early."
    )


def lora_tag(name: str, weight: float = 1.0) -> str:
    return f"<lora:{name}:{weight:g}>"


def tag_being_typed(text: str, cursor: int) -> tuple[int, str] | None:
    """(start of the name, name typed so far) when the cursor follows ``<lora:…``, else None."""
    m = _TAG_BEING_TYPED.search(text[:cursor])
    return (m.start(2), m.group(2)) if m else None


def matching_loras(loras: list[LoraInfo], typed: str) -> list[LoraInfo]:
    typed = typed.lower()
    return [x for x in loras if not x.problem and typed in x.name.lower()]
