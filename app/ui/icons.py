"""The app icon: the SVG (sharp at any DPI) plus rendered PNGs for platforms that want bitmaps."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtGui import QIcon


def icons_dir() -> Path:
    """``resources/icons`` in a checkout, or inside the packaged app's folder."""
    base = getattr(sys, "_MEIPASS", None)
    root = Path(base) if base else Path(__file__).resolve().parents[2]
    return root / "resources" / "icons"


def app_icon() -> QIcon:
    """Sfumato's icon at every size we ship; empty if the files are missing."""
    folder = icons_dir()
    icon = QIcon()
    svg = folder / "sfumato.svg"
    if svg.is_file():
        icon.addFile(str(svg))
    for png in sorted(folder.glob("sfumato-*.png")):
        icon.addFile(str(png))
    return icon
