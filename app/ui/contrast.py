"""WCAG 2.x contrast: relative luminance and contrast ratio of two colours.

Used by the theme tests (every label's text against what is painted behind it, in both
themes) and available to anyone choosing a colour. AA asks 4.5:1 for body text and 3:1 for
large text (18 pt, or 14 pt bold); disabled controls are exempt.
https://www.w3.org/TR/WCAG21/#dfn-contrast-ratio
"""

from __future__ import annotations

from PySide6.QtGui import QColor

AA_BODY = 4.5
AA_LARGE = 3.0


def _channel(c: float) -> float:
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(colour: QColor | str) -> float:
    """Relative luminance in [0, 1] (sRGB, WCAG's definition)."""
    c = QColor(colour)
    return (
        0.2126 * _channel(c.redF()) + 0.7152 * _channel(c.greenF()) + 0.0722 * _channel(c.blueF())
    )


def contrast_ratio(a: QColor | str, b: QColor | str) -> float:
    """(L_lighter + 0.05) / (L_darker + 0.05): 1 (none) to 21 (black on white)."""
    la, lb = luminance(a), luminance(b)
    hi, lo = max(la, lb), min(la, lb)
    return (hi + 0.05) / (lo + 0.05)


def blend(top: QColor, under: QColor) -> QColor:
    """``top`` (with alpha) painted over opaque ``under``."""
    a = top.alphaF()
    return QColor.fromRgbF(
        top.redF() * a + under.redF() * (1 - a),
        top.greenF() * a + under.greenF() * (1 - a),
        top.blueF() * a + under.blueF() * (1 - a),
    )
