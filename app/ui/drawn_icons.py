"""Small icons drawn with QPainter, for buttons whose emoji a system font may lack.

An emoji as button text ("🎲") shows as a missing-glyph box where no colour-emoji font is
installed (a fresh Linux desktop, the offscreen platform). These are drawn in the palette's
text colour, so they follow the light and dark themes, and stay sharp at any device ratio.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QApplication

#: Pip centres of a die's five face, in units of the face's side.
_FIVE = ((0.28, 0.28), (0.72, 0.28), (0.5, 0.5), (0.28, 0.72), (0.72, 0.72))


def _colour() -> QColor:
    app = QApplication.instance()
    return app.palette().buttonText().color() if app is not None else QColor("#444")


def dice_icon(colour: QColor | None = None, side: int = 64) -> QIcon:
    """A die showing five: a rounded outline with five pips."""
    colour = colour or _colour()
    pm = QPixmap(side, side)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    pen = QPen(colour, side * 0.07)
    p.setPen(pen)
    margin = side * 0.12
    face = QRectF(margin, margin, side - 2 * margin, side - 2 * margin)
    p.drawRoundedRect(face, side * 0.14, side * 0.14)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(colour)
    r = side * 0.075
    for x, y in _FIVE:
        p.drawEllipse(QPointF(face.left() + x * face.width(), face.top() + y * face.height()), r, r)
    p.end()
    return QIcon(pm)
