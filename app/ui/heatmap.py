"""Drawing uncertainty maps: the coloured pixmap and the legend with its numbers."""

from __future__ import annotations

from PySide6.QtCore import QRect, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QLinearGradient, QPainter, QPixmap
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.state.uncertainty import COLORMAPS, UncertaintyMap, colorize, format_value, lut


def heatmap_pixmap(umap: UncertaintyMap, lo: float, hi: float, colormap: str) -> QPixmap:
    """The map coloured from ``lo`` (first colour) to ``hi`` (last), one pixel per value."""
    rgb = colorize(umap.values, lo, hi, colormap)
    h, w, _ = rgb.shape
    image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())  # copy: the numpy buffer goes away


class HeatLegend(QWidget):
    """A colour bar with the range's numbers, the colormap's name and the hovered value."""

    BAR_W, BAR_H = 180, 10

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("HeatLegend")
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.lo, self.hi = 0.0, 1.0
        self.colormap = "viridis"
        self.title = "Uncertainty (pixel variance)"
        self.readout = ""
        self._colours: list[QColor] = []
        self.setFixedSize(self.BAR_W + 24, 70)

    def set_range(self, lo: float, hi: float, colormap: str, title: str) -> None:
        if colormap != self.colormap or not self._colours:
            table = lut(colormap)
            self._colours = [QColor(int(r), int(g), int(b)) for r, g, b in table[::15]]
            self._colours.append(QColor(*(int(c) for c in table[-1])))
        self.lo, self.hi, self.colormap, self.title = lo, hi, colormap, title
        self.update()

    def set_readout(self, text: str) -> None:
        if text != self.readout:
            self.readout = text
            self.update()

    def texts(self) -> tuple[str, str, str]:
        """(low label, high label, colormap name): what the legend prints, for tests."""
        return format_value(self.lo), format_value(self.hi), COLORMAPS.get(self.colormap, "")

    def end_labels(self) -> tuple[str, str]:
        """The bar's ends in words and numbers: which way is certain (every colormap offered
        runs dark → bright as the variance rises)."""
        lo, hi, _name = self.texts()
        return f"{lo} sure", f"unsure {hi}"

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(QColor("#34363c"))  # the zoom toolbar's box (#CanvasToolbar in style.qss)
        p.setBrush(QColor(34, 35, 39, 215))
        p.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 8, 8)
        font = p.font()
        font.setPointSizeF(8.5)
        p.setFont(font)
        p.setPen(QColor("#c9ccd3"))
        p.drawText(QRect(12, 4, self.BAR_W, 16), Qt.AlignmentFlag.AlignLeft, self.title)
        bar = QRect(12, 24, self.BAR_W, self.BAR_H)
        grad = QLinearGradient(bar.left(), 0, bar.right(), 0)
        n = max(1, len(self._colours) - 1)
        for i, c in enumerate(self._colours):
            grad.setColorAt(i / n, c)
        p.fillRect(bar, grad)
        low_text, high_text = self.end_labels()
        p.setPen(QColor("#9da1aa"))
        p.drawText(QRect(12, 36, self.BAR_W, 14), Qt.AlignmentFlag.AlignLeft, low_text)
        p.drawText(QRect(12, 36, self.BAR_W, 14), Qt.AlignmentFlag.AlignRight, high_text)
        p.setPen(QColor("#e6e8ec"))
        p.drawText(
            QRect(12, 51, self.BAR_W, 16),
            Qt.AlignmentFlag.AlignLeft,
            self.readout or "Hover the image for a value",
        )
        p.end()
