"""What the Uncertainty panel and the canvas heatmap show (BayesDiff, docs/uncertainty.md).

No widgets. The maps are float arrays the engine wrote (``<image>.uncertainty.npy``: per-pixel
variance in [0, 1]² units); colouring, range and ranking happen here so the window can restyle
a map without asking the engine again. numpy and cmap are imported lazily: the window must open
before either is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

from engine.protocol import FORM_DEFAULTS

from .observable import Observable, Property

if TYPE_CHECKING:
    import numpy as np

#: Colormaps offered, perceptually uniform first. viridis is the default: uniform in lightness
#: and readable with the common colour-vision deficiencies (cividis is tuned further for them).
COLORMAPS: dict[str, str] = {
    "viridis": "Viridis",
    "cividis": "Cividis (colour-blind tuned)",
    "magma": "Magma",
    "inferno": "Inferno",
    "gray": "Greys",
}
DEFAULT_COLORMAP = "viridis"
RANGE_MODES = {"image": "Per image", "batch": "Shared across the batch"}
LAYOUTS = {"overlay": "Overlay", "side": "Side by side"}
#: GenerateParams fields the panel edits (kept in the generation settings' options, so they
#: go out with the next job and round-trip through recipes).
PARAM_FIELDS = (
    "uncertainty",
    "uncertainty_samples",
    "uncertainty_skip",
    "uncertainty_decodes",
    "uncertainty_score",
)
#: The scores an image can be ranked by (GenerateParams.uncertainty.score).
SCORES = {
    "latent": "Latent, summed (BayesDiff)",
    "pixel": "Pixels, mean of decodes",
}
DEFAULTS = {name: FORM_DEFAULTS[name] for name in PARAM_FIELDS}


@dataclass
class UncertaintyMap:
    """One image's pixel map: ``values`` (H, W) float32 variance, its score and range."""

    values: np.ndarray
    score: float
    vmin: float
    vmax: float
    path: Path | None = None

    def value_at(self, x: float, y: float) -> float | None:
        """The variance under image pixel (x, y), or None outside the map."""
        h, w = self.values.shape
        col, row = int(x), int(y)
        if 0 <= col < w and 0 <= row < h and x >= 0 and y >= 0:
            return float(self.values[row, col])
        return None


def load_map(path: Path, score: float | None = None) -> UncertaintyMap:
    """Read a map the engine wrote (runs in a worker thread). The score, when not given, is
    the map's mean: the engine's definition (engine/protocol.py, UncertaintyResult)."""
    import numpy as np

    values = np.load(path, allow_pickle=False).astype(np.float32, copy=False)
    if values.ndim != 2:
        raise ValueError(f"{path.name}: expected an (H, W) map, got shape {values.shape}")
    values = np.nan_to_num(np.clip(values, 0.0, None))
    score = float(values.mean()) if score is None else float(score)
    return UncertaintyMap(values, score, float(values.min()), float(values.max()), path)


def map_path(png: Path) -> Path:
    """Where an image's map lives: beside it, ``<stem>.uncertainty.npy`` (as the engine saves)."""
    return png.with_suffix(".uncertainty.npy")


def find_map(png: Path) -> UncertaintyMap | None:
    """The map saved beside an image, if there is a readable one (worker thread)."""
    path = map_path(png)
    if not path.is_file():
        return None
    try:
        return load_map(path)
    except (OSError, ValueError):
        return None


def display_range(
    maps: list[UncertaintyMap | None], current: UncertaintyMap | None, mode: str
) -> tuple[float, float]:
    """(low, high) that the colormap spans: this image's own, or every map of the batch."""
    chosen = [m for m in maps if m is not None] if mode == "batch" else [current]
    chosen = [m for m in chosen if m is not None]
    if not chosen:
        return 0.0, 1.0
    lo = min(m.vmin for m in chosen)
    hi = max(m.vmax for m in chosen)
    return lo, hi if hi > lo else lo + 1e-12


@lru_cache(maxsize=8)
def lut(name: str) -> np.ndarray:
    """(256, 3) uint8 colour table of a colormap (built once per name; treat as read-only)."""
    import numpy as np
    from cmap import Colormap

    rgba = Colormap(name if name in COLORMAPS else DEFAULT_COLORMAP).lut(256)
    table = (np.asarray(rgba)[:, :3] * 255 + 0.5).astype(np.uint8)
    table.flags.writeable = False  # shared by every caller through the cache
    return table


def colorize(values: np.ndarray, lo: float, hi: float, colormap: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of ``values`` mapped linearly from [lo, hi] through the colormap."""
    import numpy as np

    t = (values.astype(np.float32) - lo) / max(hi - lo, 1e-12)
    idx = np.clip(np.rint(t * 255), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(lut(colormap)[idx])


def most_certain_first(scores: list[float | None]) -> list[int]:
    """Indices ordered from the lowest score (most certain) up; images without a map last."""
    return sorted(
        range(len(scores)),
        key=lambda i: (scores[i] is None, scores[i] if scores[i] is not None else 0.0, i),
    )


def cost_text(samples: int, skip: int, decodes: int) -> str:
    """What S, k and M cost, in words: extra UNet work per step and VAE decodes per image."""
    unet = 1.0 + samples / max(1, skip)
    return (
        f"≈ {unet:.1f}× a plain run's UNet work ({samples}/{skip} extra evaluations "
        f"per step) + {decodes} extra VAE decodes per image"
    )


def format_value(value: float) -> str:
    return f"{value:.2e}" if value and (abs(value) < 1e-3 or abs(value) >= 1e3) else f"{value:.4f}"


def score_meaning(kind: str | None) -> str:
    """What an image's score measures, for tooltips: ``kind`` is its recipe's
    ``uncertainty.score`` (None: the default, BayesDiff's latent sum)."""
    if kind == "pixel":
        return "the mean pixel variance σ² of its decoded samples"
    return "the summed variance of its final latent, BayesDiff's score"


def thumb_text(index: int, score: float | None) -> str:
    """The text under a thumbnail: its number, and its score when it has one (a word more
    does not fit under the thumbnail in the window's font: the Uncertainty panel's batch line
    and the tooltip say what the number is and that lower is more certain)."""
    return f"{index + 1}" if score is None else f"{index + 1} · {short_value(score)}"


def short_value(value: float) -> str:
    """Two significant digits, short enough to print under a thumbnail: 3.7e-4, 0.012; whole
    numbers from 100 to 99,999 (BayesDiff's latent sums are in the hundreds): 109."""
    if not value:
        return "0"
    if 1e-2 <= abs(value) < 1e2:
        return f"{value:.2g}"
    if 1e2 <= abs(value) < 1e5:
        return f"{value:.0f}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def is_most_certain_first(scores: list[float | None]) -> bool:
    """Every image has a score and they rise from first to last (what "Sort" leaves)."""
    return (
        len(scores) > 1
        and all(s is not None for s in scores)
        and all(a <= b for a, b in pairwise(scores))
    )  # type: ignore[operator]


class UncertaintyView(Observable):
    """How maps are shown: on or off, opacity, colormap, range and layout."""

    show_map = Property(True, doc="Draw the map over (or beside) the image")
    opacity = Property(0.6, coerce=float)
    colormap = Property(DEFAULT_COLORMAP)
    range_mode = Property("image", doc="'image' or 'batch'")
    layout = Property("overlay", doc="'overlay' or 'side'")
