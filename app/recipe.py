"""Reading a generation recipe back out of an image file (ours, A1111's, or another tool's)."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from engine.protocol import GenerateParams, recipe_from_png_text

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
