"""The app's look: Fusion style, a dark or light palette (following the desktop by default),
and ``style.qss``."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QPainter, QPalette, QPixmap, QPolygonF
from PySide6.QtWidgets import QApplication

from app.state.settings import DARK, LIGHT, SYSTEM

STYLE_FILE = Path(__file__).resolve().parent.parent / "style.qss"

ACCENT = QColor("#d9a35b")
ERROR = QColor("#e0686b")
CANVAS_BG = QColor("#141517")


#: Palette colours per scheme. The stylesheet is written for dark; light maps its colours.
PALETTES = {
    DARK: {
        "Window": "#1b1c1f",
        "WindowText": "#d9dade",
        "Base": "#16171a",
        "AlternateBase": "#222327",
        "ToolTipBase": "#2b2d32",
        "ToolTipText": "#e6e7ea",
        "Text": "#d9dade",
        "Button": "#2c2e33",
        "ButtonText": "#d9dade",
        "BrightText": "#ffffff",
        "Highlight": "#7a5a2e",
        "HighlightedText": "#ffffff",
        "Link": "#e6b470",
        "PlaceholderText": "#6b6e76",
        "Mid": "#34363c",
        "Dark": "#141517",
        "Shadow": "#0b0b0c",
        "disabled": "#62656d",
    },
    LIGHT: {
        "Window": "#eeeff1",
        "WindowText": "#222327",
        "Base": "#fbfbfc",
        "AlternateBase": "#e6e7ea",
        "ToolTipBase": "#ffffff",
        "ToolTipText": "#222327",
        "Text": "#222327",
        "Button": "#e3e4e7",
        "ButtonText": "#222327",
        "BrightText": "#000000",
        "Highlight": "#e8c48f",
        "HighlightedText": "#1b1c1f",
        "Link": "#8a5a1c",
        "PlaceholderText": "#8e919a",
        "Mid": "#c9cbd0",
        "Dark": "#b8bbc2",
        "Shadow": "#9a9da5",
        "disabled": "#9a9da5",
    },
}


def system_scheme(app: QApplication | None = None) -> str:
    """The desktop's colour scheme (Qt ≥ 6.5 style hints): DARK or LIGHT; dark when unknown."""
    app = app or QApplication.instance()
    try:
        scheme = app.styleHints().colorScheme()
    except AttributeError:  # Qt < 6.5
        return DARK
    return LIGHT if scheme == Qt.ColorScheme.Light else DARK


def resolve_scheme(choice: str, app: QApplication | None = None) -> str:
    """Settings' theme choice (system/dark/light) → the scheme to paint."""
    return choice if choice in (DARK, LIGHT) else system_scheme(app)


def current_scheme(app: QApplication | None = None) -> str:
    """The scheme :func:`apply_theme` last applied (DARK before any)."""
    app = app or QApplication.instance()
    return str(app.property("sfumatoScheme") or DARK)


def apply_theme(app: QApplication, choice: str = SYSTEM) -> str:
    """Fusion style, a palette for dialogs and menus, then the stylesheet; returns the scheme.

    ``choice`` is Settings' theme: 'system' follows the desktop (call again when it changes —
    :func:`follow_system` wires that), 'dark' or 'light' force one.
    """
    scheme = resolve_scheme(choice, app)
    app.setStyle("Fusion")
    pal = QPalette()
    colours = PALETTES[scheme]
    for name, value in colours.items():
        if name != "disabled":
            pal.setColor(getattr(QPalette.ColorRole, name), QColor(value))
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
        QPalette.ColorRole.WindowText,
    ):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor(colours["disabled"]))
    app.setPalette(pal)
    app.setProperty("sfumatoScheme", scheme)
    try:
        sheet = STYLE_FILE.read_text(encoding="utf-8")
    except OSError:
        return scheme  # a missing sheet leaves the palette: plainer, still usable
    if scheme == LIGHT:
        sheet = light_sheet(sheet)
    for key, path in _arrow_images(scheme).items():
        sheet = sheet.replace(f"@{key}@", path.as_posix())
    app.setStyleSheet(sheet)
    return scheme


def follow_system(app: QApplication, choice: Callable[[], str]) -> None:
    """Re-apply the theme when the desktop switches light/dark and ``choice()`` is 'system'."""
    hints = app.styleHints()
    if hasattr(hints, "colorSchemeChanged"):
        hints.colorSchemeChanged.connect(lambda _s: choice() == SYSTEM and apply_theme(app, SYSTEM))


_COLOUR = re.compile(r"#([0-9a-fA-F]{6})\b|rgba\((\d+),\s*(\d+),\s*(\d+),\s*(\d+)\)")


def light_colour(hex_rgb: str) -> str:
    """The light-scheme twin of a dark-scheme colour: greys and dark tints flip their
    lightness; bright accents (amber, red, green text) darken enough to read on light grey."""
    c = QColor(hex_rgb)
    h, s, lightness, _a = c.getHslF()
    if s < 0.18:
        if lightness >= 0.4:
            # a text grey: darker than a plain flip, so that it keeps WCAG AA (4.5:1) on the
            # light panels (a flipped #777a82 read 2.6:1: the "faint status text")
            lightness = max(0.1, (1.0 - lightness) * 0.75)
        else:  # a background or border: flip
            lightness = min(0.98, max(0.1, 1.0 - lightness * 0.95))
    elif lightness < 0.4:
        # a dark tint behind coloured text (badges, error fields): a pale tint, so the
        # darkened text on it keeps 4.5:1
        lightness = min(0.94, 1.0 - lightness * 0.5)
        s = min(s, 0.5)
    else:
        # accents and coloured text: dark enough to read on light grey, and the accent
        # (Generate) dark enough for its light text (5:1)
        lightness = min(lightness, 0.28)
    out = QColor.fromHslF(max(h, 0.0), s, lightness)
    return out.name()


def light_sheet(sheet: str) -> str:
    """The dark stylesheet with every colour replaced by :func:`light_colour`."""

    def swap(m: re.Match[str]) -> str:
        if m.group(1):
            return light_colour("#" + m.group(1))
        r, g, b, a = (int(m.group(i)) for i in range(2, 6))
        twin = QColor(light_colour(QColor(r, g, b).name()))
        return f"rgba({twin.red()}, {twin.green()}, {twin.blue()}, {a})"

    return _COLOUR.sub(swap, sheet)


def _arrow_images(scheme: str = DARK) -> dict[str, Path]:
    """Small arrow PNGs for combo and spin boxes, drawn once: stylesheets need files."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    folder = Path(tempfile.gettempdir()) / f"sfumato-theme-{uid}-{scheme}"
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
            p.setBrush(QColor("#a9acb3" if scheme == DARK else "#4b4e56"))
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
