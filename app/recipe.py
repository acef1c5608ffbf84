"""Reading a generation recipe back out of an image file: ours, A1111's (PNG, JPEG, WebP) or
ComfyUI's.

Where each tool keeps it:

- **Sfumato** PNGs: a ``sfumato`` text chunk (JSON, versioned: old versions are migrated by
  :func:`engine.protocol.recipe_from_json`) beside A1111's ``parameters`` chunk. Ours wins.
- **A1111 / Forge** PNGs: the ``parameters`` text chunk. Their JPEGs and WebPs: EXIF
  ``UserComment`` (tag 0x9286), 8 bytes of charset (``UNICODE\\0`` then UTF-16, or ``ASCII``)
  then the same text. Read by :mod:`engine.a1111`'s table, by A1111's own rules.
- **ComfyUI** PNGs: the ``prompt`` text chunk, the API graph (:mod:`app.comfyui_recipe`).

:func:`read_recipe` says what it restored (:attr:`Recipe.fields`), what it adjusted
(:attr:`Recipe.notes`) and which keys it did not restore (:attr:`Recipe.not_restored`), so the
window can tell the user; a file that restores nothing raises :class:`RecipeError` and the
current settings stay.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from engine.protocol import (
    PNG_PARAMETERS_KEY,
    PNG_RECIPE_KEY,
    GenerateParams,
    GridCell,
    SamplerGridJob,
    SamplerGridParams,
    kind_of,
    recipe_from_json,
)

#: Extensions we try to open; anything else is refused before reading it.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
#: ComfyUI's text chunk holding the API graph it ran.
COMFYUI_PROMPT_KEY = "prompt"
_EXIF_IFD, _USER_COMMENT = 0x8769, 0x9286


class RecipeError(Exception):
    """The file has no usable recipe; the message says why, in words for the user."""


@dataclass
class Recipe:
    """A recipe read from a file, and what reading it did."""

    params: GenerateParams
    source: str  # "Sfumato", "A1111", "ComfyUI"
    fields: set[str] = field(default_factory=set)  # GenerateParams fields the file set
    notes: list[str] = field(default_factory=list)  # values adjusted or left out, in words
    not_restored: list[str] = field(default_factory=list)  # the file's keys Sfumato lacks


def decode_user_comment(raw: bytes | str) -> str:
    """EXIF UserComment → text: an 8-byte charset prefix, then the bytes. A1111 writes
    ``UNICODE\\0`` + UTF-16 (big-endian by the EXIF standard; little-endian from some
    writers, told apart by where the zero bytes of ASCII characters sit)."""
    if isinstance(raw, str):
        return raw
    prefix, body = raw[:8], raw[8:]
    if prefix.startswith(b"UNICODE"):
        if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
            return body.decode("utf-16")
        even_zeros = body[0::2].count(0)
        odd_zeros = body[1::2].count(0)
        return body.decode("utf-16-le" if odd_zeros > even_zeros else "utf-16-be", errors="replace")
    if prefix.startswith(b"ASCII"):
        return body.decode("ascii", errors="replace")
    return (body if prefix == b"\0" * 8 else raw).decode("utf-8", errors="replace")


def read_png_text(path: Path) -> dict[str, str]:
    """All text an image carries: PNG tEXt/iTXt/zTXt chunks; for JPEG and WebP the EXIF
    UserComment (as ``parameters``) and a JPEG comment."""
    from PIL import Image, UnidentifiedImageError  # lazy: Pillow is not needed at start-up

    try:
        with Image.open(path) as img:
            img.load()
            text = {str(k): str(v) for k, v in (getattr(img, "text", {}) or {}).items()}
            for key in (PNG_PARAMETERS_KEY, PNG_RECIPE_KEY):
                if key not in text and isinstance(img.info.get(key), str):
                    text[key] = img.info[key]
            if PNG_PARAMETERS_KEY not in text:
                comment = img.getexif().get_ifd(_EXIF_IFD).get(_USER_COMMENT)
                if comment:
                    text[PNG_PARAMETERS_KEY] = decode_user_comment(comment).rstrip("\0")
                elif isinstance(img.info.get("comment"), bytes | str):
                    raw = img.info["comment"]
                    text[PNG_PARAMETERS_KEY] = (
                        raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
                    )
            return text
    except UnidentifiedImageError as exc:
        raise RecipeError(f"{path.name} is not an image Sfumato can read.") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise RecipeError(f"Could not read {path.name}: {exc}") from exc


def recipe_from_text(text: dict[str, str], name: str = "The image") -> Recipe:
    """The recipe in an image's text: ours, else A1111's, else ComfyUI's graph."""
    from engine import a1111

    problems: list[str] = []
    if PNG_RECIPE_KEY in text:
        try:
            params = recipe_from_json(text[PNG_RECIPE_KEY])
            return Recipe(params, "Sfumato", set(GenerateParams.model_fields))
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            problems.append(f"its Sfumato recipe is damaged ({_first_line(exc)})")
    if text.get(PNG_PARAMETERS_KEY, "").strip():
        got = a1111.parse(text[PNG_PARAMETERS_KEY])
        if (
            got.fields - {"prompt", "negative_prompt"}
            or got.params.prompt.strip()
            or got.params.negative_prompt.strip()
        ):
            return Recipe(got.params, "A1111", got.fields, problems + got.notes, got.not_restored)
    if COMFYUI_PROMPT_KEY in text:
        from .comfyui_recipe import ComfyGraphError, parse_graph

        try:
            got = parse_graph(json.loads(text[COMFYUI_PROMPT_KEY]))
            return Recipe(got.params, "ComfyUI", got.fields, problems + got.notes, got.not_restored)
        except (ValueError, ComfyGraphError) as exc:
            problems.append(
                str(exc)
                if isinstance(exc, ComfyGraphError)
                else "its ComfyUI graph is not valid JSON"
            )
    if problems:
        raise RecipeError(
            f"{name} has generation settings Sfumato cannot use: {'; '.join(problems)}."
        )
    raise RecipeError(
        f"{name} has no generation settings in it (no A1111 'parameters', ComfyUI graph or "
        "Sfumato recipe). Was it saved by another program?"
    )


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def read_recipe(path: Path | str) -> Recipe:
    """The recipe stored in an image file; raises :class:`RecipeError` with a clear message."""
    path = Path(path)
    if path.is_dir():
        raise RecipeError(f"{path.name} is a folder; drop a PNG made by Sfumato or A1111.")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise RecipeError(
            f"{path.name} is not an image. Drop a PNG made by Sfumato or A1111 to reuse its "
            "settings."
        )
    if not path.is_file():
        raise RecipeError(f"{path.name} does not exist (any more).")
    return recipe_from_text(read_png_text(path), path.name)


def recipe_from_file(path: Path | str) -> GenerateParams:
    """:func:`read_recipe`'s parameters only (history, the library)."""
    return read_recipe(path).params


def describe(recipe: Recipe, name: str, known_sampler=None) -> tuple[bool, str]:
    """(worth a warning, the sentence the window shows) after restoring ``recipe``.

    ``known_sampler(name) -> bool`` says whether the engine has a sampler (None: unknown)."""
    parts = [
        f"Settings restored from {name}"
        + (f" ({recipe.source})." if recipe.source != "Sfumato" else ".")
    ]
    warn = False
    if (
        "sampler" in recipe.fields
        and known_sampler is not None
        and not known_sampler(recipe.params.sampler)
    ):
        parts.append(
            f"Sampler {recipe.params.sampler!r} is not one Sfumato has: choose "
            "another before generating."
        )
        warn = True
    if recipe.notes:
        parts += recipe.notes
        warn = True
    if recipe.not_restored:
        shown = recipe.not_restored[:8]
        more = len(recipe.not_restored) - len(shown)
        parts.append(
            "Not restored (Sfumato has no such setting): "
            + ", ".join(shown)
            + (f" and {more} more" if more > 0 else "")
            + "."
        )
        warn = True
    return warn, " ".join(parts)


@dataclass
class SavedGrid:
    """A comparison-grid PNG's layout: its parameters and where each cell's own PNG is."""

    params: SamplerGridParams
    cells: list[tuple[GridCell, Path]]


def grid_from_file(path: Path | str) -> SavedGrid | None:
    """The grid stored in a ``sampler_grid`` sheet PNG, or None for any other image.

    Cell PNGs are looked up beside the sheet, where Sfumato saves them; missing ones are
    left out (the grid shows them empty)."""
    path = Path(path)
    try:
        raw = read_png_text(path).get("sfumato")
        data = json.loads(raw) if raw else None
    except (RecipeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("kind") != kind_of(SamplerGridJob):
        return None
    try:
        params = SamplerGridParams.model_validate(data["grid"])
        cells = [
            (
                GridCell.model_validate({k: v for k, v in c.items() if k != "name"}),
                path.parent / str(c.get("name", "")),
            )
            for c in data.get("cells", [])
        ]
    except (ValidationError, KeyError, TypeError):
        return None
    return SavedGrid(params, [(cell, p) for cell, p in cells if p.name and p.is_file()])
