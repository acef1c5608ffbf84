"""Sizes a model can draw: its native (training) size and how far a requested size may stray.

A diffusion UNet draws well near the size it was trained at. Far below it, it has too few
latent pixels to form anything; far above it, it repeats shapes or, for a small model like the
built-in 64×64 one, gives noise, and the run costs the square of the side (512×768 on the
built-in model: 60 s of noise instead of a second's picture). The window warns before such a
job (the Prompt panel under Size, a restored recipe, Generate), and never refuses it.
"""

from __future__ import annotations

from engine.protocol import Architecture, ModelInfo

#: How far a side may be from the native size, as a factor either way, before a warning.
#: SD 1.5 at 512 draws usable 256–1024 sides; beyond ×2 it duplicates subjects.
FAR_FACTOR = 2.0


def native_size(model: ModelInfo | None) -> int:
    """The side the model was trained at: its own ``native_size`` if the engine reports one,
    else its architecture's (engine/architecture.py); 0 if unknown."""
    if model is None:
        return 0
    return int(
        getattr(model, "native_size", 0) or Architecture.parse(model.architecture).native_size
    )


def size_warning(width: int, height: int, model: ModelInfo | None) -> str:
    """A sentence when ``width``×``height`` is far from the model's native size, else ''."""
    native = native_size(model)
    if not native or width <= 0 or height <= 0:
        return ""
    big, small = max(width, height), min(width, height)
    name = (model.name or model.id) if model is not None else "the model"
    if big > native * FAR_FACTOR:
        cost = width * height / (native * native)
        return (
            f"{width}×{height} is far above {name}'s native {native}×{native}: expect "
            f"noise or repeated shapes, and about {cost:.0f}× the time of a native image. "
            f"Try {native}×{native}."
        )
    if small < native / FAR_FACTOR:
        return (
            f"{width}×{height} is far below {name}'s native {native}×{native}: too few "
            f"pixels for it to draw a picture. Try {native}×{native}."
        )
    return ""
