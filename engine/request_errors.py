"""Pydantic's validation errors rewritten for people (the 422 body of every route).

Pydantic speaks to programmers: "Input tag 'x' found using 'kind' does not match any of the
expected tags", "JSON decode error" at field "1", "Input should be less than or equal to 100"
for a NaN. Each error here gets a field path without pydantic's internals (``body``, union tags,
validator names) and a sentence that says what to send instead.
"""

from __future__ import annotations

import math
from typing import Any

#: Message of an error about a value that is NaN or infinite (JSON extensions Python accepts).
NOT_A_NUMBER = "is not a number (NaN or infinity); give a finite number"


def field_path(loc: tuple, tags: set[str]) -> str:
    """``job.params.width`` from pydantic's ``('body', 'job', 'generate', 'params', 'width')``."""
    parts = []
    for x in loc:
        if x == "body" and not parts:
            continue
        if isinstance(x, str) and (x in tags or "[" in x or x.startswith("function-")):
            continue  # a union member's tag or a validator's name, not a field the user wrote
        parts.append(str(x))
    return ".".join(parts)


def describe(err: dict[str, Any], tags: set[str]) -> tuple[str, str]:
    """(field, message) for one pydantic error of a request."""
    kind, ctx, value = err.get("type", ""), err.get("ctx") or {}, err.get("input")
    field = field_path(tuple(err.get("loc", ())), tags)
    if kind == "json_invalid":
        where = err.get("loc", ())[-1] if err.get("loc") else None
        at = f" at character {where}" if isinstance(where, int) else ""
        detail = ctx.get("error", "")
        return "", f"The request body is not valid JSON{at}" + (f": {detail}" if detail else "")
    if isinstance(value, float) and not math.isfinite(value):
        return field, NOT_A_NUMBER
    if kind == "union_tag_invalid":
        expected = ctx.get("expected_tags", "")
        return (
            f"{field}.{ctx.get('discriminator', 'kind')}".strip(".").replace("'", ""),
            f"{ctx.get('tag')!r} is not a kind Sfumato knows; use one of {expected}",
        )
    if kind == "union_tag_not_found":
        disc = str(ctx.get("discriminator", "kind")).strip("'")
        return f"{field}.{disc}".strip("."), "is missing: say which kind this is"
    if kind == "missing":
        return field, "is required"
    if kind == "extra_forbidden":
        return field, "is not a setting Sfumato knows (check its spelling)"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return field, "should be an object ({…})"
    msg = str(err.get("msg", "Invalid value")).removeprefix("Value error, ")
    return field, msg


def summary(field: str, message: str) -> str:
    """One line for the top of the error: ``Width: is required`` → ``Width is required``."""
    if not field:
        return message
    label = field.rsplit(".", 1)[-1].replace("_", " ")
    label = label[:1].upper() + label[1:]
    if message.startswith(("is ", "should ")):
        return f"{label} {message}"
    return f"{label}: {message}"
