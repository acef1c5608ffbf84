"""The sampler grid on the canvas: step counts across, samplers down, seconds under each cell.

Drawn from :class:`CanvasGrid`; clicking a finished cell emits :attr:`GridView.cell_clicked`.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QMouseEvent, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QWidget

from app.state.canvas import CanvasState

from .theme import ACCENT, CANVAS_BG

GAP, HEADER, FOOT, MARGIN = 10, 26, 20, 18
MAX_UPSCALE = 8


class GridView(QWidget):
    """Paints the grid to fit the widget; cells are clickable once rendered."""

    cell_clicked = Signal(int, int)

    def __init__(self, state: CanvasState, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("GridView")
        self.state = state
        self.setMouseTracking(True)
        self._hover: tuple[int, int] | None = None
        self._pixmaps: dict[tuple[int, int], tuple[int, QPixmap]] = {}
        state.grid_changed.connect(self._reset)
        state.grid_updated.connect(lambda _r, _c: self.update())

    def _reset(self) -> None:
        self._pixmaps.clear()
        self.update()

    # ----------------------------------------------------------------- geometry
    def _label_width(self) -> int:
        grid = self.state.grid
        if grid is None:
            return 0
        font = QFont(self.font())
        font.setWeight(QFont.Weight.DemiBold)
        fm = QFontMetrics(font)
        return min(
            max((fm.horizontalAdvance(t) for t in grid.row_labels), default=0) + 20,
            max(80, self.width() // 3),
        )

    def cell_rects(self) -> dict[tuple[int, int], QRect]:
        """Where each cell's image is drawn, in widget coordinates (for clicks and tests)."""
        grid = self.state.grid
        if grid is None or not grid.n_rows or not grid.n_cols:
            return {}
        left = self._label_width()
        first = next(iter(grid.slots.values())).image
        iw, ih = max(1, first.width or 64), max(1, first.height or 64)
        avail_w = self.width() - 2 * MARGIN - left - (grid.n_cols - 1) * GAP
        avail_h = self.height() - 2 * MARGIN - HEADER - grid.n_rows * (FOOT + GAP)
        scale = min(avail_w / (grid.n_cols * iw), avail_h / (grid.n_rows * ih), MAX_UPSCALE)
        cw, ch = max(8, int(iw * scale)), max(8, int(ih * scale))
        total_w = left + grid.n_cols * cw + (grid.n_cols - 1) * GAP
        total_h = HEADER + grid.n_rows * (ch + FOOT + GAP) - GAP
        x0 = (self.width() - total_w) // 2 + left
        y0 = (self.height() - total_h) // 2 + HEADER
        return {
            (r, c): QRect(x0 + c * (cw + GAP), y0 + r * (ch + FOOT + GAP), cw, ch)
            for r in range(grid.n_rows)
            for c in range(grid.n_cols)
        }

    def cell_at(self, pos: QPoint) -> tuple[int, int] | None:
        return next((k for k, r in self.cell_rects().items() if r.contains(pos)), None)

    def _pixmap(self, key: tuple[int, int], data: bytes | None) -> QPixmap | None:
        if data is None:
            return None
        cached = self._pixmaps.get(key)
        if cached is not None and cached[0] == id(data):
            return cached[1]
        pm = QPixmap()
        if not pm.loadFromData(data):
            return None
        self._pixmaps[key] = (id(data), pm)
        return pm

    # ----------------------------------------------------------------- painting
    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), CANVAS_BG)
        grid = self.state.grid
        rects = self.cell_rects()
        if grid is None or not rects:
            return
        bold = QFont(self.font())
        bold.setWeight(QFont.Weight.DemiBold)
        small = QFont(self.font())
        small.setPointSizeF(max(7.0, self.font().pointSizeF() * 0.88))
        left = self._label_width()
        fm = QFontMetrics(bold)
        # column headers
        p.setFont(bold)
        p.setPen(QColor("#c9cbd1"))
        for c, text in enumerate(grid.col_labels):
            r = rects[(0, c)]
            p.drawText(
                QRect(r.left(), r.top() - HEADER, r.width(), HEADER - 6),
                Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom,
                text,
            )
        # row labels
        for r_i, text in enumerate(grid.row_labels):
            r = rects[(r_i, 0)]
            p.setPen(QColor("#e1e2e6"))
            p.drawText(
                QRect(r.left() - left, r.top(), left - 12, r.height()),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                fm.elidedText(text, Qt.TextElideMode.ElideMiddle, left - 12),
            )
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        for key, rect in rects.items():
            slot = grid.slot(*key)
            if slot is None:
                continue
            image = slot.image
            pm = self._pixmap(key, image.data)
            if pm is not None:
                upscale = rect.width() >= 2 * pm.width()
                p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, not upscale)
                if image.preview:
                    p.setOpacity(0.55)
                p.drawPixmap(rect, pm)
                p.setOpacity(1.0)
            else:
                p.setPen(QPen(QColor("#34363c"), 1, Qt.PenStyle.DashLine))
                p.setBrush(QColor("#1b1c1f"))
                p.drawRoundedRect(QRectF(rect).adjusted(0.5, 0.5, -0.5, -0.5), 4, 4)
            p.setBrush(Qt.BrushStyle.NoBrush)
            if key == self._hover and image.ready:
                p.setPen(QPen(ACCENT, 2))
                p.drawRoundedRect(QRectF(rect).adjusted(-2, -2, 2, 2), 4, 4)
            # footer: seconds, or what the cell is waiting for
            p.setFont(small)
            if image.ready and slot.seconds is not None:
                p.setPen(QColor("#9fd8b0"))
                text = f"{slot.seconds:.2f} s"
            elif image.preview:
                p.setPen(QColor("#f2cf9a"))
                text = f"step {image.step}/{image.total}…" if image.total else "sampling…"
            else:
                p.setPen(QColor("#6b6e76"))
                text = "waiting"
            p.drawText(
                QRect(rect.left(), rect.bottom() + 2, rect.width(), FOOT - 2),
                Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter,
                text,
            )
        p.end()

    # ----------------------------------------------------------------- mouse
    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        hit = self.cell_at(event.position().toPoint())
        if hit != self._hover:
            self._hover = hit
            grid = self.state.grid
            slot = grid.slot(*hit) if grid is not None and hit is not None else None
            ready = slot is not None and slot.image.ready
            self.setCursor(
                Qt.CursorShape.PointingHandCursor if ready else Qt.CursorShape.ArrowCursor
            )
            if slot is not None and ready:
                p = slot.image.params
                self.setToolTip(
                    f"{grid.row_labels[slot.row]} · {p.steps} steps · CFG "
                    f"{p.cfg_scale:g} · seed {slot.image.seed}\nClick to open"
                    if p is not None
                    else ""
                )
            else:
                self.setToolTip("")
            self.update()

    def leaveEvent(self, _event) -> None:
        self._hover = None
        self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            hit = self.cell_at(event.position().toPoint())
            if hit is not None:
                self.cell_clicked.emit(*hit)
