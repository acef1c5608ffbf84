"""Small icons drawn with QPainter, for buttons whose emoji a system font may lack.

An emoji as button text ("🎲") shows as a missing-glyph box where no colour-emoji font is
installed (a fresh Linux desktop, the offscreen platform). These icons are painted when Qt asks
for them, in the application palette's button-text colour at that moment, so they follow the
light and dark themes, and they stay sharp at any size and device ratio.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QIconEngine, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QApplication

#: Pip centres of a die's five face, in units of the face's side.
_FIVE = ((0.28, 0.28), (0.72, 0.28), (0.5, 0.5), (0.28, 0.72), (0.72, 0.72))


def _colour(mode: QIcon.Mode) -> QColor:
    app = QApplication.instance()
    if app is None:
        return QColor("#808080")
    group = (
        QPalette.ColorGroup.Disabled if mode == QIcon.Mode.Disabled else QPalette.ColorGroup.Active
    )
    return app.palette().color(group, QPalette.ColorRole.ButtonText)


def paint_die(p: QPainter, rect: QRectF, colour: QColor) -> None:
    """A die showing five: a rounded outline with five pips, inside ``rect``."""
    side = min(rect.width(), rect.height())
    margin = side * 0.12
    face = QRectF(
        rect.center().x() - side / 2 + margin,
        rect.center().y() - side / 2 + margin,
        side - 2 * margin,
        side - 2 * margin,
    )
    p.save()
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(QPen(colour, max(1.0, side * 0.07)))
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.drawRoundedRect(face, side * 0.14, side * 0.14)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(colour)
    r = side * 0.075
    for x, y in _FIVE:
        p.drawEllipse(QPointF(face.left() + x * face.width(), face.top() + y * face.height()), r, r)
    p.restore()


class _DieEngine(QIconEngine):
    def paint(self, painter: QPainter, rect: QRect, mode: QIcon.Mode, state: QIcon.State) -> None:
        paint_die(painter, QRectF(rect), _colour(mode))

    def pixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QPixmap:
        pm = QPixmap(size)
        pm.fill(Qt.GlobalColor.transparent)
        p = QPainter(pm)
        self.paint(p, QRect(0, 0, size.width(), size.height()), mode, state)
        p.end()
        return pm

    def clone(self) -> QIconEngine:
        return _DieEngine()


def dice_icon() -> QIcon:
    """The die icon (random seed), in the current theme's button-text colour."""
    return QIcon(_DieEngine())
