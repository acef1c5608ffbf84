"""Writing result images: PNG with the full recipe, written atomically before it is announced."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from engine.protocol import (
    PNG_PARAMETERS_KEY,
    PNG_RECIPE_KEY,
    GenerateParams,
    UncertaintyResult,
    recipe_json,
)


def output_path(output_dir: Path, job_id: str, index: int, when: datetime) -> Path:
    return job_output_dir(output_dir, when) / f"{job_id[:8]}-{index:03d}.png"


def job_output_dir(output_dir: Path, when: datetime) -> Path:
    """The day folder a job's outputs go to (from its creation time, so a resumed job writes
    where it started)."""
    return output_dir / when.strftime("%Y-%m-%d")


def remove_stranded_parts(output_dir: Path, job) -> list[Path]:
    """Delete the half-written ``*.part`` files of ``job`` (an engine killed inside
    :func:`write_png`); a resumed job renders those images again. Returns what was removed."""
    removed = []
    for part in job_output_dir(output_dir, job.created_at).glob(f"{job.id[:8]}-*.part"):
        part.unlink(missing_ok=True)
        removed.append(part)
    return removed


def save_png(
    image,
    path: Path,
    params: GenerateParams,
    *,
    seed: int,
    model_name: str | None,
    index: int,
    uncertainty: UncertaintyResult | None = None,
) -> Path:
    """Save ``image`` (PIL) with A1111 ``parameters`` and Sfumato JSON text chunks (with the
    image's uncertainty score, if it has one)."""
    a1111 = params.to_a1111(model_name=model_name, seed=seed)
    if uncertainty is not None:
        a1111 += f", Uncertainty score: {uncertainty.score:.6g}"
    return write_png(
        image,
        path,
        {
            PNG_PARAMETERS_KEY: a1111,
            PNG_RECIPE_KEY: recipe_json(
                params, seed=seed, model_name=model_name, index=index, uncertainty=uncertainty
            ),
        },
    )


def write_png(image, path: Path, texts: dict[str, str]) -> Path:
    """Write ``image`` (PIL) with these text chunks atomically: complete or absent."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".png.part")
    with open(tmp, "wb") as f:
        image.save(f, format="PNG", pnginfo=info)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path
