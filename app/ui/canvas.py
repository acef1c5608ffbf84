"""The central canvas: the image large (fit, zoom, pan, 1:1) and a strip of the batch below."""

from __future__ import annotations

import asyncio

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPixmap, QWheelEvent
from PySide6.QtWidgets import (
    QFrame,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.state.canvas import CanvasImage, CanvasState
from app.state.jobs import JobItem, JobsState, cancelled_note, canvas_status, step_text
from app.state.uncertainty import (
    UncertaintyMap,
    UncertaintyView,
    display_range,
    format_value,
    score_meaning,
    thumb_text,
)
from engine.protocol import JobState

from .grid_view import GridView
from .heatmap import HeatLegend, heatmap_pixmap
from .theme import CANVAS_BG
from .transient import delete_when_hidden

MIN_ZOOM, MAX_ZOOM = 0.05, 32.0
EMPTY_CANVAS = "Write a prompt and press Ctrl+Enter"
#: The caption floats over the (always dark) canvas, so it keeps its own colours in both themes.
CAPTION_STYLE = (
    "background: rgba(20,21,23,190); border-radius: 6px; padding: 3px 8px; color: #b8bbc2;"
)
#: A cancelled job's leftover preview: amber text and border, so it does not pass for a result.
CANCELLED_CAPTION_STYLE = (
    "background: rgba(42,34,24,220); border: 1px solid #a3803f; "
    "border-radius: 6px; padding: 3px 8px; color: #f2cf9a;"
)
THUMB = 84
SIDE_GAP = 0.04  # gap between image and map in side-by-side, as a fraction of the width


def pixmap_from_png(data: bytes | None) -> QPixmap | None:
    if not data:
        return None
    pm = QPixmap()
    return pm if pm.loadFromData(data) else None


class CanvasView(QGraphicsView):
    """Shows one image; wheel zooms under the cursor, drag pans, double-click toggles fit/1:1."""

    zoom_changed = Signal(float)
    #: The mouse is over image pixel (x, y) (in either half when side by side).
    hovered = Signal(float, float)
    #: The mouse left the image.
    hover_left = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("CanvasView")
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self._item = QGraphicsPixmapItem()
        self._item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._scene.addItem(self._item)
        # The uncertainty map: over the image (with opacity) or beside it.
        self._heat = QGraphicsPixmapItem()
        self._heat.setTransformationMode(Qt.TransformationMode.FastTransformation)
        self._heat.setZValue(1)
        self._heat.hide()
        self._scene.addItem(self._heat)
        self.heat_layout = "overlay"
        self._size = QSize(0, 0)
        self.setMouseTracking(True)
        self.viewport().setMouseTracking(True)
        self.setBackgroundBrush(CANVAS_BG)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        self.setAcceptDrops(False)  # the main window takes drops
        self.fit_mode = True
        #: Viewport pixels along the top and the bottom that fitting keeps the image out of
        #: (the bands the panel's overlays float in: legend, caption, "Use these settings").
        self.insets = (0, 0)
        self._content = QRectF(0, 0, 1, 1)  # the image (and its map beside it), scene units
        self.placeholder = EMPTY_CANVAS
        self._has_image = False

    # ----------------------------------------------------------------- content
    @property
    def has_image(self) -> bool:
        return self._has_image

    def set_pixmap(self, pixmap: QPixmap | None, width: int = 0, height: int = 0) -> None:
        """Show ``pixmap`` stretched to ``width``×``height`` (previews are smaller than results)."""
        if pixmap is None or pixmap.isNull():
            self._item.setPixmap(QPixmap())
            self._has_image = False
            self._content = QRectF(0, 0, 1, 1)
            self._scene.setSceneRect(self._content)
            self.viewport().update()
            return
        w = width or pixmap.width()
        h = height or pixmap.height()
        new_size = not self._has_image or self._size != QSize(w, h)
        self._item.setPixmap(pixmap)
        self._item.setScale(w / pixmap.width())
        self._has_image = True
        self._size = QSize(w, h)
        if new_size:
            self._layout_scene()
        self._update_smoothing()
        self.viewport().update()

    def set_heatmap(
        self, pixmap: QPixmap | None, opacity: float = 0.6, layout: str = "overlay"
    ) -> None:
        """Show an uncertainty map over the image (``opacity``) or beside it; None hides it."""
        if pixmap is None or pixmap.isNull() or not self._has_image:
            changed = self._heat.isVisible()
            self._heat.hide()
            if changed:
                self._layout_scene()
            return
        was = (self._heat.isVisible(), self.heat_layout)
        self.heat_layout = layout
        self._heat.setPixmap(pixmap)
        self._heat.setScale(self._size.width() / pixmap.width())
        side = layout == "side"
        self._heat.setOpacity(1.0 if side else max(0.0, min(1.0, opacity)))
        self._heat.setPos(self._size.width() * (1 + SIDE_GAP) if side else 0.0, 0.0)
        self._heat.show()
        if was != (True, layout):
            self._layout_scene()
        self.viewport().update()

    @property
    def heatmap_shown(self) -> bool:
        return self._heat.isVisible()

    def _layout_scene(self) -> None:
        w, h = self._size.width(), self._size.height()
        if self._heat.isVisible() and self.heat_layout == "side":
            w = w * (2 + SIDE_GAP)
        self._content = QRectF(0, 0, max(1, w), max(1, h))
        self._scene.setSceneRect(self._content)
        if self.fit_mode:
            self.fit()

    def set_insets(self, top: int, bottom: int) -> None:
        """Keep a fitted image between the top and bottom bands (refits if fitted)."""
        if (top, bottom) != self.insets:
            self.insets = (top, bottom)
            if self.fit_mode:
                self.fit()

    def image_pixel(self, scene: QPointF) -> tuple[float, float] | None:
        """Image pixel under a scene point (either half when side by side), or None."""
        w, h = self._size.width(), self._size.height()
        x, y = scene.x(), scene.y()
        if self._heat.isVisible() and self.heat_layout == "side" and x >= w * (1 + SIDE_GAP):
            x -= w * (1 + SIDE_GAP)
        if 0 <= x < w and 0 <= y < h:
            return x, y
        return None

    def mouseMoveEvent(self, event) -> None:
        super().mouseMoveEvent(event)
        if not self._has_image:
            return
        pixel = self.image_pixel(self.mapToScene(event.position().toPoint()))
        if pixel is None:
            self.hover_left.emit()
        else:
            self.hovered.emit(*pixel)

    def leaveEvent(self, event) -> None:
        super().leaveEvent(event)
        self.hover_left.emit()

    # ----------------------------------------------------------------- zoom
    @property
    def zoom(self) -> float:
        return self.transform().m11()

    def fit(self) -> None:
        """Scale the image to fill the view between :attr:`insets` (never beyond 8×, so tiny
        images stay sane)."""
        self.fit_mode = True
        if not self._has_image:
            return
        rect = self._content
        top, bottom = self.insets
        view = self.viewport().rect().adjusted(16, 16 + top, -16, -16 - bottom)
        if rect.isEmpty() or view.width() <= 0 or view.height() <= 0:
            return
        scale = min(view.width() / rect.width(), view.height() / rect.height(), 8.0)
        # The scene grows by the insets: the view centres the grown rect, which centres the
        # image in the room between them.
        padded = rect.adjusted(0, -top / scale, 0, bottom / scale)
        self._scene.setSceneRect(padded)
        self._set_zoom(scale)
        self.centerOn(padded.center())

    def actual_size(self) -> None:
        """1:1 — one image pixel per screen pixel."""
        self.fit_mode = False
        self._set_zoom(1.0)
        if self._has_image:
            self.centerOn(self._scene.sceneRect().center())

    def zoom_by(self, factor: float) -> None:
        self.fit_mode = False
        self._set_zoom(self.zoom * factor)

    def _set_zoom(self, scale: float) -> None:
        scale = max(MIN_ZOOM, min(MAX_ZOOM, scale))
        self.resetTransform()
        self.scale(scale, scale)
        self._update_smoothing()
        self.zoom_changed.emit(scale)

    def _update_smoothing(self) -> None:
        # Enlarged small images read better with crisp pixels; reduced ones need smoothing.
        effective = self.zoom * self._item.scale()
        mode = (
            Qt.TransformationMode.FastTransformation
            if effective >= 3.0
            else Qt.TransformationMode.SmoothTransformation
        )
        self._item.setTransformationMode(mode)

    # ----------------------------------------------------------------- events
    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(1.2**steps)

    def mouseDoubleClickEvent(self, event) -> None:
        if self.fit_mode:
            self.actual_size()
        else:
            self.fit()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.fit_mode:
            self.fit()

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        if self._has_image:
            return
        painter.save()
        painter.resetTransform()
        painter.setPen(QColor("#8e919a"))  # 5.6:1 on the canvas (WCAG AA)
        font = painter.font()
        font.setPointSizeF(13)
        painter.setFont(font)
        painter.drawText(self.viewport().rect(), Qt.AlignmentFlag.AlignCenter, self.placeholder)
        painter.restore()


class CanvasToolbar(QFrame):
    """Floating zoom controls in the canvas's top-right corner."""

    def __init__(self, view: CanvasView, parent: QWidget):
        super().__init__(parent)
        self.setObjectName("CanvasToolbar")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        lay.setSpacing(2)
        for text, tip, slot in (
            ("Fit", "Fit to view (F)", view.fit),
            ("1:1", "Actual pixels (1)", view.actual_size),
            ("−", "Zoom out (-)", lambda: view.zoom_by(1 / 1.25)),
            ("+", "Zoom in (+)", lambda: view.zoom_by(1.25)),
        ):
            b = QToolButton(self)
            b.setText(text)
            b.setToolTip(tip)
            b.clicked.connect(slot)
            lay.addWidget(b)
        self.zoom_label = QLabel("100%", self)
        self.zoom_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        lay.addWidget(self.zoom_label)
        view.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f}%"))


class CanvasPanel(QWidget):
    """The canvas view, its zoom controls, a caption and the batch strip, bound to CanvasState."""

    #: A final (non-preview) image is on screen: (path or "").
    image_shown = Signal(str)
    #: A preview is on screen: (step).
    preview_shown = Signal(int)
    #: "Use these settings" on the image shown: (recipe, file name or "").
    use_settings_requested = Signal(object, str)
    #: A grid cell was clicked: (row, col).
    cell_clicked = Signal(int, int)
    #: Right-click → "Save as…" on the image shown.
    save_requested = Signal()
    #: Right-click → "Retry": queue the recipe of the image shown again (a finished image
    #: with a new seed; an unfinished slot as it was asked).
    retry_requested = Signal(object)

    def __init__(
        self,
        state: CanvasState,
        heat: UncertaintyView | None = None,
        parent: QWidget | None = None,
        jobs: JobsState | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("canvas")
        self.state = state
        #: The jobs, so that the caption says where the followed job stands (queued, running,
        #: cancelled) instead of a stale line.
        self.jobs = jobs
        self.heat = heat or UncertaintyView()
        self.view = CanvasView(self)
        self.legend = HeatLegend(self)
        self.legend.hide()
        self.view.hovered.connect(self._on_hover)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(
            lambda pos: delete_when_hidden(self.context_menu()).popup(self.view.mapToGlobal(pos))
        )
        self.view.hover_left.connect(lambda: self.legend.set_readout(""))
        self.grid_view = GridView(state, self)
        self.grid_view.hide()
        self.grid_view.cell_clicked.connect(self.cell_clicked.emit)
        self.toolbar = CanvasToolbar(self.view, self)
        self.back_button = QToolButton(self)
        self.back_button.setObjectName("GridBack")
        self.back_button.setText("◂ Back to grid")
        self.back_button.setToolTip("Show the whole sampler comparison again")
        self.back_button.clicked.connect(state.show_grid)
        self.back_button.hide()
        self.use_button = QToolButton(self)
        self.use_button.setObjectName("UseSettings")
        self.use_button.setText("Use these settings")
        self.use_button.setToolTip(
            "Put this image's recipe (sampler, steps, options, seed…) "
            "into the Prompt and Sampler panels"
        )
        self.use_button.clicked.connect(self._use_settings)
        self.use_button.hide()
        self.caption = QLabel(self)
        self._caption_text = ""  # in full; the label shortens it to stay clear of the button
        self.caption.setObjectName("Hint")
        self.caption.setStyleSheet(CAPTION_STYLE)
        self.caption.hide()
        self.strip = QListWidget(self)
        self.strip.setObjectName("ThumbStrip")
        self.strip.setViewMode(QListWidget.ViewMode.IconMode)
        self.strip.setFlow(QListWidget.Flow.LeftToRight)
        self.strip.setWrapping(False)
        self.strip.setMovement(QListWidget.Movement.Static)
        self.strip.setIconSize(QSize(THUMB, THUMB))
        self.strip.setFixedHeight(THUMB + 22)
        self.strip.setSpacing(4)
        self.strip.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.strip.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.strip.currentRowChanged.connect(self._on_strip_row)
        self.strip.hide()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.grid_view, 1)
        lay.addWidget(self.strip)
        self.shown_final: CanvasImage | None = None
        self._decoded: dict[int, tuple[int, QPixmap]] = {}
        # The coloured map last drawn and what it was coloured from (map, low, high, colormap):
        # a map's arrival reaches the canvas by several signals (slot updated, maps changed,
        # slot shown), and opacity or layout changes need no recolouring.
        self._heat_source: tuple[object, float, float, str] | None = None
        self._heat_pixmap: QPixmap | None = None
        self._image_waiters: list[asyncio.Future[str]] = []

        state.reset.connect(self._rebuild)
        state.updated.connect(self._on_updated)
        state.current_changed.connect(lambda _i: self._show_current())
        state.grid_changed.connect(self._on_grid_changed)
        state.grid_updated.connect(lambda _r, _c: self._grid_caption())
        state.maps_changed.connect(self._show_heatmap)
        for name in ("show_map", "opacity", "colormap", "range_mode", "layout"):
            getattr(self.heat, f"{name}_changed").connect(lambda _v: self._show_heatmap())
        if jobs is not None:
            jobs.job_updated.connect(self._on_job_updated)
            jobs.changed.connect(lambda: self._on_job_updated(self.state.job_id))

    # ----------------------------------------------------------------- for tests and scripts
    async def wait_for_image(self, timeout: float = 60.0) -> str:
        """Wait until the next final image is on screen; returns its path (or "")."""
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._image_waiters.append(fut)
        return await asyncio.wait_for(fut, timeout)

    # ----------------------------------------------------------------- sampler grid
    def _on_grid_changed(self) -> None:
        showing = self.state.grid_visible and self.state.grid is not None
        self.grid_view.setVisible(showing)
        self.view.setVisible(not showing)
        if showing:
            self.strip.hide()
            self._grid_caption()
        self._place_overlays()

    def _grid_caption(self) -> None:
        grid = self.state.grid
        if grid is None or not self.state.grid_visible:
            return
        if grid.complete:
            text = f"{grid.cell_count} cells · click one to open it"
            if grid.sheet_path is not None:
                text += f" · grid saved as {grid.sheet_path.name}"
        else:
            text = f"Comparing samplers · {grid.progress_text()}"
        self._caption_text = text
        self.caption.show()
        self._place_overlays()

    def context_menu(self) -> QMenu:
        """Right-click on the image: Copy image, Save as…, Use settings, Retry (each enabled
        only when it can act on what is shown)."""
        image = self.state.current_image
        ready = image is not None and image.ready
        menu = QMenu(self)
        menu.setObjectName("canvas_menu")
        copy = menu.addAction("Copy image", self.copy_image)
        copy.setEnabled(ready)
        save = menu.addAction("Save as…", self.save_requested.emit)
        save.setEnabled(ready)
        menu.addSeparator()
        use = menu.addAction("Use settings", self._use_settings)
        use.setEnabled(image is not None and image.params is not None)
        retry = menu.addAction("Retry with a new seed" if ready else "Retry", self._retry)
        retry.setEnabled(image is not None and image.params is not None)
        retry.setToolTip(
            "Queue this image's recipe again with a new random seed (the same "
            "seed would draw the same image)"
            if ready
            else "Queue this job's recipe again"
        )
        menu.setToolTipsVisible(True)
        return menu

    def copy_image(self) -> bool:
        """The image shown, full size, onto the clipboard (as an image other apps paste)."""
        image = self.state.current_image
        if image is None or not image.ready:
            return False
        pm = self._pixmap(image)
        if pm is None:
            return False
        QGuiApplication.clipboard().setImage(pm.toImage())
        return True

    def _retry(self) -> None:
        image = self.state.current_image
        if image is not None and image.params is not None:
            # a finished image again with its seed would be the same image: a new seed; an
            # unfinished one (cancelled, failed) as it was asked
            self.retry_requested.emit(image.params.with_seed(-1) if image.ready else image.params)

    def _use_settings(self) -> None:
        image = self.state.current_image
        if image is not None and image.params is not None:
            params = image.params
            if image.seed is not None and image.seed >= 0:
                params = params.with_seed(image.seed)
            self.use_settings_requested.emit(params, image.path.name if image.path else "")

    # ----------------------------------------------------------------- state → view
    def _rebuild(self) -> None:
        self._decoded.clear()
        self.strip.blockSignals(True)
        self.strip.clear()
        for i, image in enumerate(self.state.images):
            item = QListWidgetItem()
            item.setSizeHint(QSize(THUMB + 8, THUMB + 16))
            self._set_thumb(item, image, i)
            self.strip.addItem(item)
        self.strip.setCurrentRow(self.state.current)
        self.strip.blockSignals(False)
        self.strip.setVisible(len(self.state.images) > 1)
        if not self.state.images:
            self.view.set_pixmap(None)
            self.caption.hide()
            self._place_overlays()

    def _pixmap(self, image: CanvasImage) -> QPixmap | None:
        """Decode each image's bytes once (previews arrive several times a second)."""
        if image.data is None:
            return None
        key = id(image.data)
        cached = self._decoded.get(id(image))
        if cached is not None and cached[0] == key:
            return cached[1]
        pm = pixmap_from_png(image.data)
        if pm is not None:
            if len(self._decoded) > 64:
                self._decoded.clear()
            self._decoded[id(image)] = (key, pm)
        return pm

    def _set_thumb(self, item: QListWidgetItem, image: CanvasImage, index: int) -> None:
        # The score under each thumbnail, so a sort by certainty reads at a glance.
        item.setText(thumb_text(index, image.score))
        pm = self._pixmap(image)
        if pm is not None:
            mode = (
                Qt.TransformationMode.FastTransformation
                if image.preview
                else Qt.TransformationMode.SmoothTransformation
            )
            item.setIcon(QIcon(pm.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio, mode)))
        tip = (
            "preview" if image.preview else (f"seed {image.seed}" if image.seed is not None else "")
        )
        if image.score is not None:
            kind = (
                image.params.uncertainty.score
                if image.params and image.params.uncertainty
                else None
            )
            tip += (
                f" · uncertainty {format_value(image.score)} (lower = more certain: "
                f"{score_meaning(kind)})"
            )
        item.setToolTip(tip)

    def _on_updated(self, index: int) -> None:
        if 0 <= index < self.strip.count():
            self._set_thumb(self.strip.item(index), self.state.images[index], index)
        if index == self.state.current:
            self._show_current()

    def _on_strip_row(self, row: int) -> None:
        if row >= 0:
            self.state.select(row)

    def _show_current(self) -> None:
        image = self.state.current_image
        # the invitation only on an empty canvas: a job's slots have their own caption
        self.view.placeholder = "" if self.state.images else EMPTY_CANVAS
        if self.strip.currentRow() != self.state.current:
            self.strip.blockSignals(True)
            self.strip.setCurrentRow(self.state.current)
            self.strip.blockSignals(False)
        if image is None or image.data is None:
            if image is None:
                self.view.set_pixmap(None)
            self._set_caption(image)
            return
        pm = self._pixmap(image)
        w = image.width or (image.params.width if image.params else 0)
        h = image.height or (image.params.height if image.params else 0)
        self.view.set_pixmap(pm, w, h)
        self._show_heatmap()
        self._set_caption(image)
        self._place_overlays()
        if image.preview:
            self.preview_shown.emit(image.step)
        elif pm is not None:
            self.shown_final = image
            path = str(image.path or "")
            self.image_shown.emit(path)
            waiters, self._image_waiters = self._image_waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(path)

    # ----------------------------------------------------------------- uncertainty map
    def _show_heatmap(self) -> None:
        image = self.state.current_image
        umap = image.uncertainty if image is not None and image.ready else None
        if umap is None or not self.heat.show_map:
            self.view.set_heatmap(None)
            self.legend.hide()
            self._place_overlays()
            return
        maps = [im.uncertainty for im in self.state.images]
        lo, hi = display_range(maps, umap, self.heat.range_mode)
        self.view.set_heatmap(self._coloured(umap, lo, hi), self.heat.opacity, self.heat.layout)
        scope = "batch" if self.heat.range_mode == "batch" and len(maps) > 1 else "image"
        self.legend.set_range(lo, hi, self.heat.colormap, f"Uncertainty · {scope} range")
        self.legend.show()
        self._place_overlays()

    def _coloured(self, umap: UncertaintyMap, lo: float, hi: float) -> QPixmap:
        """The map through the colormap over [lo, hi]; coloured again only when one changed."""
        source = self._heat_source
        if (
            self._heat_pixmap is None
            or source is None
            or source[0] is not umap
            or source[1:] != (lo, hi, self.heat.colormap)
        ):
            self._heat_pixmap = heatmap_pixmap(umap, lo, hi, self.heat.colormap)
            self._heat_source = (umap, lo, hi, self.heat.colormap)
        return self._heat_pixmap

    def _on_hover(self, x: float, y: float) -> None:
        image = self.state.current_image
        umap = image.uncertainty if image is not None else None
        value = umap.value_at(x, y) if umap is not None else None
        self.legend.set_readout(
            "" if value is None else f"uncertainty {format_value(value)} at ({int(x)}, {int(y)})"
        )

    def _on_job_updated(self, job_id: str) -> None:
        """The followed job moved on (queued → running → cancelled…): refresh the caption."""
        if job_id and job_id == self.state.job_id and not self.grid_view.isVisibleTo(self):
            self._set_caption(self.state.current_image)

    def _followed_job(self) -> tuple[JobItem | None, int]:
        """The job the canvas follows and how many jobs run or wait before it."""
        if self.jobs is None or not self.state.job_id:
            return None, 0
        item = self.jobs.get(self.state.job_id)
        if item is None or item.state is not JobState.queued:
            return item, 0
        queued = self.jobs.queued_ids()
        ahead = queued.index(item.id) if item.id in queued else 0
        return item, ahead + (1 if self.jobs.running is not None else 0)

    def _set_caption(self, image: CanvasImage | None) -> None:
        if image is None:
            self.caption.hide()
            return
        job, ahead = self._followed_job()
        cancelled = cancelled_note(job)
        if self.caption.property("state") != ("cancelled" if cancelled else ""):
            self.caption.setProperty("state", "cancelled" if cancelled else "")
            self.caption.setStyleSheet(CANCELLED_CAPTION_STYLE if cancelled else CAPTION_STYLE)
        if image.data is None:
            text = canvas_status(job, ahead) if self.jobs is not None else "Waiting for the engine…"
        elif image.preview:
            text = (
                f"Preview · {step_text(image.step, image.total).lower()}"
                if image.total
                else "Preview"
            )
            if cancelled:
                text = (
                    f"{cancelled} ({step_text(image.step, image.total).lower()})"
                    if image.total
                    else cancelled
                )
        else:
            parts = []  # most telling first: a narrow canvas shortens the caption's end
            if image.seed is not None and image.seed >= 0:
                parts.append(f"seed {image.seed}")
            if image.score is not None:
                parts.append(f"uncertainty {format_value(image.score)} (lower = more certain)")
            if image.width:
                parts.append(f"{image.width}×{image.height}")
            if image.path is not None:
                parts.append(image.path.name)
            text = " · ".join(parts)
        self._caption_text = text
        self.caption.setVisible(bool(text))
        self._place_overlays()

    # ----------------------------------------------------------------- layout of overlays
    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._place_overlays()

    def _place_overlays(self) -> None:
        grid_shown = self.grid_view.isVisibleTo(self)
        image = self.state.current_image
        self.back_button.setVisible(self.state.grid is not None and not grid_shown)
        self.back_button.adjustSize()
        self.back_button.move(12, 12)
        self.back_button.raise_()
        self.use_button.setVisible(
            not grid_shown and image is not None and image.ready and image.params is not None
        )
        self.use_button.adjustSize()
        host = self.grid_view if grid_shown else self.view
        self.use_button.move(
            host.width() - self.use_button.width() - 12,
            host.height() - self.use_button.height() - 12,
        )
        self.use_button.raise_()
        self.toolbar.setVisible(self.view.has_image and not grid_shown)
        self.toolbar.adjustSize()
        self.toolbar.move(self.view.width() - self.toolbar.width() - 12, 12)
        self.toolbar.raise_()
        button = self.use_button.width() + 12 if self.use_button.isVisibleTo(self) else 0
        self._fit_caption(host.width() - 24 - button)
        self.caption.move(12, host.height() - self.caption.height() - 12)
        self.caption.raise_()
        self.legend.setVisible(self.legend.isVisibleTo(self) and not grid_shown)
        beside = self.toolbar.x() - 8 - self.legend.width()
        if beside >= 12:  # left of the zoom controls, sharing their band
            self.legend.move(beside, self.toolbar.y())
        else:
            self.legend.move(
                self.view.width() - self.legend.width() - 12,
                self.toolbar.y() + self.toolbar.height() + 8,
            )
        self.legend.raise_()
        # A fitted image stays clear of the legend and the caption rather than under them.
        top = self.legend.geometry().bottom() + 8 if self.legend.isVisibleTo(self) else 0
        if self.toolbar.isVisibleTo(self):  # nor under the zoom controls
            top = max(top, self.toolbar.geometry().bottom() + 8)
        bottom = 0
        if self.caption.isVisibleTo(self) or self.use_button.isVisibleTo(self):
            bottom = max(self.caption.height(), self.use_button.height()) + 12 + 4
        self.view.set_insets(top, bottom)

    def _fit_caption(self, room: int) -> None:
        """The caption in ``room`` pixels, shortened at its end (seed and score stay)."""
        full = self._caption_text
        pad = self.caption.width() - self.caption.contentsRect().width() + 4
        text = self.caption.fontMetrics().elidedText(
            full, Qt.TextElideMode.ElideRight, max(40, room - pad)
        )
        if text != self.caption.text():
            self.caption.setText(text)
            self.caption.setToolTip(full if text != full else "")
        self.caption.adjustSize()

    def keyPressEvent(self, event) -> None:
        key = event.key()
        if key == Qt.Key.Key_F:
            self.view.fit()
        elif key == Qt.Key.Key_1:
            self.view.actual_size()
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.view.zoom_by(1.25)
        elif key == Qt.Key.Key_Minus:
            self.view.zoom_by(1 / 1.25)
        else:
            super().keyPressEvent(event)
