"""The app's look: Fusion style, a dark palette, and ``style.qss``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QPainter, QPalette, QPixmap, QPolygonF
from PySide6.QtWidgets import QApplication

STYLE_FILE = Path(__file__).resolve().parent.parent / "style.qss"

ACCENT = QColor("#d9a35b")
ERROR = QColor("#e0686b")
CANVAS_BG = QColor("#141517")


def apply_theme(app: QApplication) -> None:
    """Dark palette for what the stylesheet does not cover (dialogs, menus), then the sheet."""
    app.setStyle("Fusion")
    pal = QPalette()
    role = QPalette.ColorRole
    for r, c in {
        role.Window: "#1b1c1f", role.WindowText: "#d9dade", role.Base: "#16171a",
        role.AlternateBase: "#222327", role.ToolTipBase: "#2b2d32", role.ToolTipText: "#e6e7ea",
        role.Text: "#d9dade", role.Button: "#2c2e33", role.ButtonText: "#d9dade",
        role.BrightText: "#ffffff", role.Highlight: "#7a5a2e", role.HighlightedText: "#ffffff",
        role.Link: "#e6b470", role.PlaceholderText: "#6b6e76", role.Mid: "#34363c",
        role.Dark: "#141517", role.Shadow: "#0b0b0c",
    }.items():
        pal.setColor(r, QColor(c))
    pal.setColor(QPalette.ColorGroup.Disabled, role.Text, QColor("#62656d"))
    pal.setColor(QPalette.ColorGroup.Disabled, role.ButtonText, QColor("#62656d"))
    pal.setColor(QPalette.ColorGroup.Disabled, role.WindowText, QColor("#62656d"))
    app.setPalette(pal)
    try:
        sheet = STYLE_FILE.read_text(encoding="utf-8")
    except OSError:
        return  # a missing sheet leaves the palette: plainer, still usable
    for key, path in _arrow_images().items():
        sheet = sheet.replace(f"@{key}@", path.as_posix())
    app.setStyleSheet(sheet)


def _arrow_images() -> dict[str, Path]:
    """Small arrow PNGs for combo and spin boxes, drawn once: stylesheets need files."""
    folder = Path(tempfile.gettempdir()) / f"sfumato-theme-{os.getuid() if hasattr(os, 'getuid') else 0}"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for key, points in {
        "ARROW_DOWN": [(2, 5), (14, 5), (8, 12)],
        "ARROW_UP": [(2, 11), (14, 11), (8, 4)],
    }.items():
        path = folder / f"{key.lower()}.png"
        if not path.exists():
            pm = QPixmap(16, 16)
            pm.fill(Qt.GlobalColor.transparent)
            p = QPainter(pm)
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor("#a9acb3"))
            p.drawPolygon(QPolygonF([QPointF(x, y) for x, y in points]))
            p.end()
            pm.save(str(path))
        out[key] = path
    return out


def repolish(widget) -> None:
    """Re-apply the stylesheet after a dynamic property (``error``, ``state``) changed."""
    style = widget.style()
    style.unpolish(widget)
    style.polish(widget)
    widget.update()
