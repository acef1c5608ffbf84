"""The Queue dock: running, queued and finished jobs as cards, with cancel and reorder."""

from __future__ import annotations

import time

from PySide6.QtCore import QMimeData, QPoint, Qt, Signal
from PySide6.QtGui import QDrag, QMouseEvent, QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.state.jobs import FIT_MATHS, JobItem, JobsState
from engine.protocol import JobState

from .elided_label import ElidedLabel
from .theme import repolish

JOB_MIME = "application/x-sfumato-job"
THUMB = 44


def format_eta(seconds: float | None) -> str:
    """``75 → '1:15 left'``; empty when unknown."""
    if seconds is None or seconds < 0:
        return ""
    s = round(seconds)
    if s < 60:
        return f"{s} s left"
    return f"{s // 60}:{s % 60:02d} left"


def describe(item: JobItem) -> str:
    """The card's second line: size, steps, sampler, images, seed."""
    p = item.params
    if p is None:
        return item.summary()
    parts = [f"{p.width}×{p.height}", f"{p.steps} steps", p.sampler]
    if item.image_count > 1:
        parts.append(f"{item.image_count} images")
    if p.seed >= 0:
        parts.append(f"seed {p.seed}")
    return " · ".join(parts)


class JobCard(QFrame):
    """One job. Queued cards can be dragged to a new place or moved with ▲/▼."""

    cancel_clicked = Signal(str)
    move_clicked = Signal(str, int)  # job id, delta (−1 up, +1 down)
    open_clicked = Signal(str)

    def __init__(self, item: JobItem, parent: QWidget | None = None):
        super().__init__(parent)
        self.job_id = item.id
        self.setObjectName("JobCard")
        self._press: QPoint | None = None
        self.title = ElidedLabel()
        self.title.setObjectName("JobTitle")
        self.badge = QLabel()
        self.badge.setObjectName("Badge")
        self.meta = ElidedLabel()
        self.meta.setObjectName("JobMeta")
        self.error = QLabel()
        self.error.setObjectName("JobError")
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.eta = ElidedLabel()
        self.eta.setObjectName("JobMeta")
        self.up_button = self._button("▲", "Run earlier")
        self.down_button = self._button("▼", "Run later")
        self.cancel_button = self._button("✕", "Cancel this job")
        self.up_button.clicked.connect(lambda: self.move_clicked.emit(self.job_id, -1))
        self.down_button.clicked.connect(lambda: self.move_clicked.emit(self.job_id, 1))
        self.cancel_button.clicked.connect(lambda: self.cancel_clicked.emit(self.job_id))

        self.thumb = QLabel()
        self.thumb.setObjectName("JobThumb")
        self.thumb.setFixedSize(THUMB, THUMB)
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.thumb.setText(item.glyph)  # until (or instead of) a picture
        self._thumb_src: bytes | None = None
        top = QHBoxLayout()
        top.setSpacing(6)
        top.addWidget(self.badge)
        top.addWidget(self.title, 1)
        top.addWidget(self.up_button)
        top.addWidget(self.down_button)
        top.addWidget(self.cancel_button)
        text = QVBoxLayout()
        text.setSpacing(4)
        text.addLayout(top)
        text.addWidget(self.meta)
        text.addWidget(self.progress)
        text.addWidget(self.eta)
        text.addWidget(self.error)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.setSpacing(10)
        lay.addWidget(self.thumb, 0, Qt.AlignmentFlag.AlignTop)
        lay.addLayout(text, 1)
        self.update_from(item, 0, 0)

    def _button(self, text: str, tip: str) -> QToolButton:
        b = QToolButton(self)
        b.setObjectName("CardButton")
        b.setText(text)
        b.setToolTip(tip)
        b.setCursor(Qt.CursorShape.PointingHandCursor)
        return b

    def update_from(self, item: JobItem, queue_pos: int, queue_len: int) -> None:
        state = item.state
        if item.thumbnail is not self._thumb_src:
            self._thumb_src = item.thumbnail
            pm = QPixmap()
            if item.thumbnail and pm.loadFromData(item.thumbnail):
                mode = (
                    Qt.TransformationMode.SmoothTransformation
                    if item.thumbnail_final
                    else Qt.TransformationMode.FastTransformation
                )
                self.thumb.setPixmap(
                    pm.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio, mode)
                )
            else:
                self.thumb.clear()
                self.thumb.setText(item.glyph)
        if self.property("state") != state.value:
            self.setProperty("state", state.value)
            self.badge.setProperty("state", state.value)
            repolish(self)
            repolish(self.badge)
        label = {JobState.queued: f"#{queue_pos + 1}" if queue_len else "queued"}.get(
            state, state.value
        )
        self.badge.setText(label)
        self.title.setText(item.title)
        maths = FIT_MATHS.get(item.fit_kind or "", "")
        self.title.setToolTip(f"{item.title}\n{maths}" if maths else item.title)
        self.meta.setText(describe(item))
        running = state is JobState.running
        self.progress.setVisible(running)
        self.progress.setValue(int(item.progress * 1000))
        if running:
            step = f"Step {item.step}/{item.total}" if item.total else "Starting…"
            if item.grid is not None:
                step = (
                    f"Cell {min(item.cells_done + 1, item.cell_count)} of {item.cell_count}"
                    f" · step {item.step}/{item.total}"
                )
            elif item.image_count > 1:
                step += f" · {len(item.results)}/{item.image_count} images done"
            eta = format_eta(item.eta_s)
            self.eta.setText(f"{step} · {eta}" if eta else step)
        elif state is JobState.done:
            took = ""
            if item.finished_at is not None:
                took = time.strftime("%H:%M", time.localtime(item.finished_at.timestamp()))
            n = len(item.results)
            videos = sum(1 for r in item.results if r.role == "video")
            what = (
                f"{item.cells_done} cells + grid"
                if item.grid is not None
                else "fit saved"
                if item.fit_kind
                else f"{videos} video{'s' if videos != 1 else ''}"
                if videos
                else f"{n} image{'s' if n != 1 else ''}"
            )
            self.eta.setText(what + (f" · {took}" if took else ""))
        else:
            self.eta.setText("")
        self.eta.setVisible(bool(self.eta.text()))
        self.error.setText(item.message if state is JobState.failed else "")
        self.error.setVisible(state is JobState.failed and bool(item.message))
        queued = state is JobState.queued
        self.up_button.setVisible(queued)
        self.down_button.setVisible(queued)
        self.up_button.setEnabled(queued and queue_pos > 0)
        self.down_button.setEnabled(queued and queue_pos < queue_len - 1)
        self.cancel_button.setVisible(not state.finished)
        self.setCursor(Qt.CursorShape.OpenHandCursor if queued else Qt.CursorShape.ArrowCursor)

    # ----------------------------------------------------------------- drag to reorder
    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = event.position().toPoint()
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if (
            self._press is not None
            and self.property("state") == JobState.queued.value
            and (event.position().toPoint() - self._press).manhattanLength() > 8
        ):
            self._press = None
            drag = QDrag(self)
            mime = QMimeData()
            mime.setData(JOB_MIME, self.job_id.encode())
            drag.setMimeData(mime)
            drag.setPixmap(self.grab().scaledToWidth(max(1, self.width() // 2)))
            drag.exec(Qt.DropAction.MoveAction)
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._press is not None and self.property("state") == JobState.done.value:
            self.open_clicked.emit(self.job_id)
        self._press = None
        super().mouseReleaseEvent(event)


class QueueList(QWidget):
    """The column of cards; accepts card drops and reports the target queue position."""

    dropped = Signal(str, int)  # job id, new position among queued jobs

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.lay = QVBoxLayout(self)
        self.lay.setContentsMargins(8, 8, 8, 8)
        self.lay.setSpacing(6)
        self.lay.addStretch(1)
        self.cards: dict[str, JobCard] = {}
        self.empty = QLabel("No jobs yet.\nPress Generate to queue one.")
        self.empty.setObjectName("Hint")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.lay.insertWidget(0, self.empty)

    def queued_cards(self) -> list[JobCard]:
        out = []
        for i in range(self.lay.count()):
            w = self.lay.itemAt(i).widget()
            if isinstance(w, JobCard) and w.property("state") == JobState.queued.value:
                out.append(w)
        return out

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasFormat(JOB_MIME):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasFormat(JOB_MIME):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        if not event.mimeData().hasFormat(JOB_MIME):
            return
        job_id = bytes(event.mimeData().data(JOB_MIME).data()).decode()
        y = event.position().y()
        cards = [c for c in self.queued_cards() if c.job_id != job_id]
        position = sum(1 for c in cards if c.geometry().center().y() < y)
        event.acceptProposedAction()
        self.dropped.emit(job_id, position)


class QueueDockWidget(QWidget):
    """Lists the JobsState; buttons call back into the controller's actions."""

    cancel_requested = Signal(str)
    move_requested = Signal(str, int)  # job id, absolute position among queued jobs
    open_requested = Signal(str)

    def __init__(self, jobs: JobsState, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("DockBody")
        self.jobs = jobs
        self.list = QueueList()
        self.list.setObjectName("queue_view")
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(self.list)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.summary = QLabel()
        self.summary.setObjectName("Muted")
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.setToolTip("Remove finished jobs from this list (images stay saved)")
        self.clear_button.clicked.connect(jobs.remove_finished)
        head = QHBoxLayout()
        head.setContentsMargins(12, 6, 8, 0)
        head.addWidget(self.summary, 1)
        head.addWidget(self.clear_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addLayout(head)
        lay.addWidget(self.scroll, 1)
        self.list.dropped.connect(self.move_requested)
        jobs.changed.connect(self.refresh)
        jobs.job_updated.connect(self._update_one)
        self.refresh()

    @property
    def queue_view(self) -> QueueList:
        return self.list

    def card(self, job_id: str) -> JobCard | None:
        return self.list.cards.get(job_id)

    def refresh(self) -> None:
        ordered = self.jobs.ordered()
        queued = [j.id for j in ordered if j.state is JobState.queued]
        lay = self.list.lay
        keep = {j.id for j in ordered}
        for job_id in list(self.list.cards):
            if job_id not in keep:
                card = self.list.cards.pop(job_id)
                lay.removeWidget(card)
                card.deleteLater()
        for pos, item in enumerate(ordered):
            card = self.list.cards.get(item.id)
            if card is None:
                card = JobCard(item)
                card.cancel_clicked.connect(self.cancel_requested)
                card.move_clicked.connect(self._move_by)
                card.open_clicked.connect(self.open_requested)
                self.list.cards[item.id] = card
            if lay.indexOf(card) != pos + 1:
                lay.removeWidget(card)
                lay.insertWidget(pos + 1, card)  # index 0 is the "no jobs" label
            qpos = queued.index(item.id) if item.id in queued else 0
            card.update_from(item, qpos, len(queued))
        self.list.empty.setVisible(not ordered)
        self._update_summary()
        self.clear_button.setEnabled(any(j.state.finished for j in ordered))

    def _update_one(self, job_id: str) -> None:
        card = self.list.cards.get(job_id)
        item = self.jobs.get(job_id)
        if card is not None and item is not None:
            queued = self.jobs.queued_ids()
            qpos = queued.index(job_id) if job_id in queued else 0
            card.update_from(item, qpos, len(queued))

    def _update_summary(self) -> None:
        running = 1 if self.jobs.running else 0
        queued = len(self.jobs.queued_ids())
        parts = []
        if running:
            parts.append("1 running")
        if queued:
            parts.append(f"{queued} queued")
        self.summary.setText(" · ".join(parts) if parts else "Idle")

    def _move_by(self, job_id: str, delta: int) -> None:
        queued = self.jobs.queued_ids()
        if job_id in queued:
            self.move_requested.emit(job_id, max(0, queued.index(job_id) + delta))
