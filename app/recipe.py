"""Reading a generation recipe back out of an image file (ours, A1111's, or another tool's)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from engine.protocol import GenerateParams, GridCell, SamplerGridParams, recipe_from_png_text

#: Extensions we try to open; anything else is refused before reading it.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}


class RecipeError(Exception):
    """The file has no usable recipe; the message says why, in words for the user."""


def read_png_text(path: Path) -> dict[str, str]:
    """All text chunks of an image (tEXt/iTXt/zTXt for PNG; comments elsewhere)."""
    from PIL import Image, UnidentifiedImageError  # lazy: Pillow is not needed at start-up

    try:
        with Image.open(path) as img:
            img.load()
            text = dict(getattr(img, "text", {}) or {})
            # JPEG/WebP from A1111 keep the parameters in EXIF UserComment; Pillow exposes
            # a few of them in info.
            for key in ("parameters", "sfumato"):
                if key not in text and isinstance(img.info.get(key), str):
                    text[key] = img.info[key]
            return {str(k): str(v) for k, v in text.items()}
    except UnidentifiedImageError as exc:
        raise RecipeError(f"{path.name} is not an image Sfumato can read.") from exc
    except OSError as exc:
        raise RecipeError(f"Could not read {path.name}: {exc}") from exc


def recipe_from_file(path: Path | str) -> GenerateParams:
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
    text = read_png_text(path)
    try:
        params = recipe_from_png_text(text)
    except (ValidationError, ValueError, KeyError) as exc:
        raise RecipeError(f"{path.name} has generation settings Sfumato cannot use: {exc}") from exc
    if params is None:
        raise RecipeError(
            f"{path.name} has no generation settings in it (no A1111 'parameters' or Sfumato "
            "recipe). Was it saved by another program?"
        )
    return params


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
    if not isinstance(data, dict) or data.get("kind") != "sampler_grid":
        return None
    try:
        params = SamplerGridParams.model_validate(data["grid"])
        cells = [(GridCell.model_validate({k: v for k, v in c.items() if k != "name"}),
                  path.parent / str(c.get("name", "")))
                 for c in data.get("cells", [])]
    except (ValidationError, KeyError, TypeError):
        return None
    return SavedGrid(params, [(cell, p) for cell, p in cells if p.name and p.is_file()])
