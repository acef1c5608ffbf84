"""The status bar: engine state (with a coloured dot), device/memory, job progress, messages."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QWidget

from app.state.engine import Connection, EngineInfo
from app.state.jobs import JobsState, step_text

from .elided_label import ElidedLabel
from .queue_dock import format_eta
from .theme import repolish

DOT_COLOURS = {
    Connection.starting: "#d9a35b",
    Connection.connecting: "#d9a35b",
    Connection.loading: "#d9a35b",
    Connection.ready: "#6cc28a",
    Connection.busy: "#5fa8e8",
    Connection.restarting: "#e0686b",
    Connection.disconnected: "#e0686b",
    Connection.stopped: "#7a7d85",
}
#: Message levels; their colours are in style.qss (QLabel#status_message[level=…]).
MESSAGE_COLOURS = ("info", "warning", "error")


class StatusBar(QStatusBar):
    """Bound to EngineInfo and JobsState; ``show_notice`` for messages from the controller."""

    def __init__(self, engine: EngineInfo, jobs: JobsState, parent: QWidget | None = None):
        super().__init__(parent)
        self.setSizeGripEnabled(False)
        self.engine, self.jobs = engine, jobs
        self.message = ElidedLabel()
        self.message.setObjectName("status_message")
        self.job_label = QLabel()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.device = QLabel()
        self.device.setObjectName("status_device")
        self.state_label = QLabel()
        self.state_label.setObjectName("status_engine")
        self.addWidget(self.message, 1)
        self.addPermanentWidget(self.job_label)
        self.addPermanentWidget(self.progress)
        self.addPermanentWidget(self.device)
        self.addPermanentWidget(self.state_label)
        self._clear_timer = QTimer(self)
        self._clear_timer.setSingleShot(True)
        self._clear_timer.timeout.connect(lambda: self.message.setText(""))
        for sig in (
            engine.connection_changed,
            engine.health_changed,
            engine.detail_changed,
            engine.url_changed,
        ):
            sig.connect(lambda _v: self._update_engine())
        jobs.changed.connect(self._update_jobs)
        jobs.job_updated.connect(lambda _id: self._update_jobs())
        self._update_engine()
        self._update_jobs()

    def show_notice(self, level: str, text: str) -> None:
        # The colour per level comes from style.qss (#status_message[level=…]), so the light
        # theme converts it: a colour set here stayed the dark theme's (faint on light grey).
        level = level if level in MESSAGE_COLOURS else "info"
        if self.message.property("level") != level:
            self.message.setProperty("level", level)
            repolish(self.message)
        self.message.setText(text.splitlines()[0] if text else "")
        self.message.setToolTip(text)
        self._clear_timer.start(15000 if level == "error" else 6000)

    def _update_engine(self) -> None:
        e = self.engine
        colour = DOT_COLOURS.get(e.connection, "#7a7d85")
        self.state_label.setText(f"<span style='color:{colour}'>●</span> {e.status_text()}")
        tip = [e.url] if e.url else []
        if e.detail:
            tip.append(e.detail)
        if e.health is not None:
            h = e.health
            tip.append(f"engine {h.version} · torch {h.torch} · diffusers {h.diffusers}")
            if h.model:
                tip.append(f"model: {h.model}")
        self.state_label.setToolTip("\n".join(tip))
        self.device.setText(e.device_text())
        self.device.setToolTip(e.device_tip())
        self.device.setVisible(bool(self.device.text()))

    def _update_jobs(self) -> None:
        item = self.jobs.running
        queued = len(self.jobs.queued_ids())
        if item is None:
            self.progress.hide()
            self.job_label.setText(f"{queued} queued" if queued else "")
            return
        self.progress.show()
        self.progress.setValue(int(item.progress * 1000))
        text = step_text(item.step, item.total)
        if images := item.images_text():
            text = f"{images} · {text}"
        eta = format_eta(item.eta_s)
        if eta:
            text += f" · {eta}"
        if queued:
            text += f" · {queued} queued"
        self.job_label.setText(text)
