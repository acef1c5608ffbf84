"""Settings: local engine (and its Python) or a remote one (URL + token), output folder, model
folders, theme."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from app.engine_locator import is_frozen
from app.state.settings import DARK, LIGHT, LOCAL, REMOTE, SYSTEM, Settings

#: Settings → GPU memory: (label, LoadModelRequest.offload)
OFFLOAD_CHOICES = (
    ("Everything on the GPU", "none"),
    ("T5 text encoder on the CPU", "t5-cpu"),
    ("Model CPU offload (slower)", "model"),
)

THEMES = ((SYSTEM, "Follow the system"), (DARK, "Dark"), (LIGHT, "Light"))

#: (url, token) → a sentence about what answered; raises nothing.
ConnectionTester = Callable[[str, str], Awaitable[str]]


class SettingsDialog(QDialog):
    """Edits a copy of the values; :meth:`apply` writes them to Settings on OK."""

    def __init__(
        self,
        settings: Settings,
        default_outputs: Path,
        tester: ConnectionTester | None = None,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(560)
        self.settings = settings
        self.tester = tester
        self._test_task: asyncio.Future[str] | None = None

        self.local_radio = QRadioButton("Run the engine on this computer")
        self.remote_radio = QRadioButton("Connect to an engine elsewhere (a GPU box)")
        group = QButtonGroup(self)
        group.addButton(self.local_radio)
        group.addButton(self.remote_radio)
        self.url_edit = QLineEdit(settings.remote_url)
        self.url_edit.setPlaceholderText("http://gpu-box:8765")
        self.token_edit = QLineEdit(settings.remote_token)
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setPlaceholderText("the token the engine was started with")
        self.test_button = QPushButton("Test connection")
        self.test_result = QLabel()
        self.test_result.setObjectName("Hint")
        self.test_result.setWordWrap(True)
        (self.remote_radio if settings.engine_mode == REMOTE else self.local_radio).setChecked(True)

        engine_box = QGroupBox("Engine")
        eb = QVBoxLayout(engine_box)
        eb.addWidget(self.local_radio)
        eb.addWidget(self.remote_radio)
        remote_form = QFormLayout()
        remote_form.setContentsMargins(24, 4, 0, 0)
        remote_form.addRow("URL", self.url_edit)
        remote_form.addRow("Token", self.token_edit)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.test_result, 1)
        remote_form.addRow("", test_row)
        eb.addLayout(remote_form)
        self.python_edit = QLineEdit(settings.engine_python)
        self.python_edit.setPlaceholderText(
            "required in the packaged app: …/bin/python with torch and sfumato's engine"
            if is_frozen()
            else "this app's Python (leave empty)"
        )
        python_browse = QPushButton("Browse…")
        python_browse.clicked.connect(self._browse_python)
        python_row = QHBoxLayout()
        python_row.addWidget(self.python_edit, 1)
        python_row.addWidget(python_browse)
        local_form = QFormLayout()
        local_form.setContentsMargins(24, 4, 0, 0)
        local_form.addRow("Engine Python", python_row)
        eb.insertLayout(1, local_form)
        self.fast_check = QCheckBox("Fast path: compiled UNet and VAE with CUDA graphs")
        self.fast_check.setToolTip(
            "On a GPU engine the model is compiled in the background after it loads (the status "
            "bar says 'fast path warming up'; jobs meanwhile run as usual), then each image is "
            "several times faster. Off: every job runs eager. The CPU engine has no fast path."
        )
        self.fast_check.setChecked(settings.fast_path)
        eb.addWidget(self.fast_check)
        self.offload_combo = QComboBox()
        for text, mode in OFFLOAD_CHOICES:
            self.offload_combo.addItem(text, mode)
        self.offload_combo.setCurrentIndex(max(0, self.offload_combo.findData(settings.offload)))
        self.offload_combo.setToolTip(
            "For GPUs with little memory, from the next model load on. T5 on the CPU: SD3/Flux's "
            "T5-XXL text encoder (9.5 GB in 16 bits) stays in host memory and runs on the CPU "
            "once per prompt. Model offload: each part moves to the GPU only while it runs "
            "(slower). The status bar says what is in force."
        )
        memory_form = QFormLayout()
        memory_form.addRow("GPU memory", self.offload_combo)
        eb.addLayout(memory_form)

        self.output_edit = QLineEdit(settings.output_dir)
        self.output_edit.setPlaceholderText(str(default_outputs))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_output)
        out_row = QHBoxLayout()
        out_row.addWidget(self.output_edit, 1)
        out_row.addWidget(browse)
        self.models_edit = QLineEdit("; ".join(settings.models_dirs))
        self.models_edit.setPlaceholderText("extra folders with checkpoints, separated by ;")
        files_box = QGroupBox("Files")
        fb = QFormLayout(files_box)
        fb.addRow("Save images to", out_row)
        fb.addRow("Model folders", self.models_edit)
        self.theme_combo = QComboBox()
        for key, label in THEMES:
            self.theme_combo.addItem(label, key)
        self.theme_combo.setCurrentIndex(max(0, self.theme_combo.findData(settings.theme)))
        look_box = QGroupBox("Appearance")
        lb = QFormLayout(look_box)
        lb.addRow("Theme", self.theme_combo)
        note = QLabel(
            "Changing the engine, output or model folders restarts the local engine; "
            "queued jobs are kept."
        )
        note.setObjectName("Hint")
        note.setWordWrap(True)

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(engine_box)
        lay.addWidget(files_box)
        lay.addWidget(look_box)
        lay.addWidget(note)
        lay.addWidget(buttons)

        self.local_radio.toggled.connect(self._update_enabled)
        self.test_button.clicked.connect(self._test)
        self._update_enabled()

    def _update_enabled(self) -> None:
        remote = self.remote_radio.isChecked()
        for w in (self.url_edit, self.token_edit, self.test_button):
            w.setEnabled(remote)
        self.python_edit.setEnabled(not remote)

    def _browse_python(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Python that runs the engine", self.python_edit.text() or str(Path.home())
        )
        if path:
            self.python_edit.setText(path)

    def _browse_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Save images to", self.output_edit.text() or str(Path.home())
        )
        if folder:
            self.output_edit.setText(folder)

    def _test(self) -> None:
        if self.tester is None:
            return
        self.test_result.setText("Connecting…")

        async def run() -> None:
            msg = await self.tester(self.url_edit.text().strip(), self.token_edit.text().strip())
            if isValid(self):  # closed meanwhile: deleted (app.ui.transient)
                self.test_result.setText(msg)

        self._test_task = asyncio.ensure_future(run())

    def values(self) -> dict[str, object]:
        dirs = [d.strip() for d in self.models_edit.text().split(";") if d.strip()]
        return {
            "engine_mode": REMOTE if self.remote_radio.isChecked() else LOCAL,
            "remote_url": self.url_edit.text().strip(),
            "remote_token": self.token_edit.text().strip(),
            "output_dir": self.output_edit.text().strip(),
            "models_dirs": dirs,
            "engine_python": self.python_edit.text().strip(),
            "theme": self.theme_combo.currentData() or SYSTEM,
            "fast_path": self.fast_check.isChecked(),
            "offload": self.offload_combo.currentData() or "none",
        }

    def apply(self) -> bool:
        """Write the values; True if the engine must restart or reconnect."""
        values = self.values()
        engine_keys = {"engine_mode", "output_dir", "models_dirs", "engine_python"}
        if values["engine_mode"] == REMOTE:
            engine_keys |= {"remote_url", "remote_token"}
        changed = {k for k, v in values.items() if getattr(self.settings, k) != v}
        for key, value in values.items():
            setattr(self.settings, key, value)
        return bool(changed & engine_keys)
