"""The toolbar's model picker: models from /v1/models, with Load and Unload."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QWidget

from app.state.engine import Connection, EngineInfo, format_bytes
from engine.protocol import ModelInfo

BUILTIN_BADGE = "★ built-in"


def model_label(m: ModelInfo) -> str:
    """How a model reads in the picker: name, badge for embedded ones, ● for the loaded one."""
    text = m.name or m.id
    if m.problem:
        text += "   ⚠ cannot load"
    if m.embedded:
        text += f"   {BUILTIN_BADGE}"
    if m.loaded:
        text = "● " + text
    return text


def placeholder_text(engine: EngineInfo) -> str:
    """What the empty picker says: the list is on its way, the engine is down, or there is
    truly no model (only once the engine has answered a list)."""
    if engine.connection in (Connection.disconnected, Connection.stopped):
        return "Waiting for the engine…"
    if engine.models_listed and engine.connection.usable:
        return "No models found"
    return "Loading models…"


class ModelBar(QWidget):
    """Combo + Load + Unload. Emits requests; the controller performs them."""

    load_requested = Signal(str)
    unload_requested = Signal()

    def __init__(self, engine: EngineInfo, parent: QWidget | None = None):
        super().__init__(parent)
        self.engine = engine
        label = QLabel("Model")
        self.combo = QComboBox()
        self.combo.setObjectName("model_combo")
        self.combo.setMinimumWidth(260)
        # A fixed policy: a new list never re-lays out the toolbar (and the window) mid-job.
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.combo.setMinimumContentsLength(28)
        self.combo.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.load_button = QToolButton()
        self.load_button.setObjectName("load_model_button")
        self.load_button.setText("Load")
        self.load_button.setToolTip("Load the chosen model (jobs use the loaded model)")
        self.unload_button = QToolButton()
        self.unload_button.setObjectName("unload_model_button")
        self.unload_button.setText("Unload model")
        self.unload_button.setToolTip("Free the memory the model holds")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(6)
        lay.addWidget(label)
        lay.addWidget(self.combo)
        lay.addWidget(self.load_button)
        lay.addWidget(self.unload_button)
        self.load_button.clicked.connect(self._load)
        self.unload_button.clicked.connect(self.unload_requested)
        self.combo.currentIndexChanged.connect(lambda _i: self._update_buttons())
        # Rebuilding the list is the expensive part: only when the list (or its ● mark) changes.
        engine.models_changed.connect(lambda _v: self.refresh())
        engine.connection_changed.connect(lambda _v: self._on_connection())
        engine.models_listed_changed.connect(lambda _v: self._on_connection())
        for sig in (engine.health_changed, engine.loading_model_changed):
            sig.connect(lambda _v: self._update_buttons())
        self.refresh()

    def selected_id(self) -> str:
        return self.combo.currentData() or ""

    def select(self, model_id: str) -> None:
        i = self.combo.findData(model_id)
        if i >= 0:
            self.combo.setCurrentIndex(i)

    def refresh(self) -> None:
        keep = self.selected_id()
        models = self.engine.models
        self.combo.blockSignals(True)
        self.combo.clear()
        for m in models:
            self.combo.addItem(model_label(m), m.id)
            row = self.combo.count() - 1
            tip = f"{m.path}\n{m.format} · {m.architecture}"
            if m.size_bytes:
                tip += f" · {format_bytes(m.size_bytes)}"
            if m.note:  # SD3/Flux single files: what it runs without, fp8, configs used
                tip += f"\nⓘ {m.note}"
            if m.problem:
                tip += f"\n⚠ {m.problem}"
                # A file that cannot load stays listed (so the user sees why) but is not pickable.
                item = self.combo.model().item(row)
                if item is not None:
                    item.setEnabled(False)
            self.combo.setItemData(row, tip, Qt.ItemDataRole.ToolTipRole)
        if not models:
            self.combo.addItem(placeholder_text(self.engine), "")
        active = self.engine.active_model  # before the first job: the engine's default
        target = keep or (active.id if active else "")
        i = self.combo.findData(target)
        self.combo.setCurrentIndex(max(0, i))
        self.combo.blockSignals(False)
        self._update_buttons()

    def _on_connection(self) -> None:
        if not self.engine.models:
            self.refresh()  # the placeholder text depends on the connection
        else:
            self._update_buttons()

    def _update_buttons(self) -> None:
        usable = self.engine.connection.usable
        loading = bool(self.engine.loading_model)
        loaded = self.engine.loaded_model
        sel = self.selected_id()
        self.combo.setEnabled(usable and not loading and self.combo.count() > 0 and bool(sel))
        self.load_button.setEnabled(
            usable and not loading and bool(sel) and (loaded is None or loaded.id != sel)
        )
        self.load_button.setText("Loading…" if loading else "Load")
        self.unload_button.setEnabled(usable and not loading and loaded is not None)

    def _load(self) -> None:
        if self.selected_id():
            self.load_requested.emit(self.selected_id())
