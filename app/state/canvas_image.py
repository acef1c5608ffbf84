"""One slot of the canvas strip: the image (or preview) with its recipe and uncertainty map."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.protocol import GenerateParams

if TYPE_CHECKING:
    from .uncertainty import UncertaintyMap


@dataclass
class CanvasImage:
    """One slot of the canvas strip. ``data`` is PNG bytes (None until something arrives)."""

    data: bytes | None = None
    path: Path | None = None
    preview: bool = False
    step: int = 0
    #: The steps ``step`` counts up to (a preview's job total, or its grid cell's steps).
    total: int = 0
    seed: int | None = None
    width: int = 0
    height: int = 0
    params: GenerateParams | None = None
    #: BayesDiff pixel map and score, when the recipe asked for uncertainty.
    uncertainty: UncertaintyMap | None = None

    @property
    def score(self) -> float | None:
        return self.uncertainty.score if self.uncertainty is not None else None

    @property
    def ready(self) -> bool:
        """A final image (not a preview, not an empty slot)."""
        return self.data is not None and not self.preview
