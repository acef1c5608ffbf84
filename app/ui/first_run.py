"""The first-run dialog: where files go, which engine to use, and a check that the model works.

Shown once at the first start (Settings.first_run_done), and again from Help → First-run setup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
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

from app.engine_locator import is_frozen
from app.model_check import CheckError, CheckResult
from app.state.settings import LOCAL, REMOTE, Settings

WIDTH = 660
#: Runs the tiny generation (applying the dialog's engine choice first if it changed).
Checker = Callable[[], Awaitable[CheckResult]]

INTRO_SOURCE = (
    "Sfumato runs models in a separate <b>engine</b> process. Here it uses this app's own "
    "Python, which already has torch and diffusers — nothing to set up. You can instead point "
    "the app at an engine on a GPU machine."
)
INTRO_FROZEN = (
    "Sfumato runs models in a separate <b>engine</b> process, with torch. The installed app does "
    "not carry torch (a CUDA build alone is several gigabytes, and it must match your GPU "
    "driver), so choose either a <b>Python environment</b> with Sfumato's engine (run "
    "<tt>pip install .</tt> in Sfumato's source folder, then pick that environment's "
    "<tt>python</tt> below), or an engine running on another machine "
    "(<tt>sfumato-engine --host 0.0.0.0 --token-file …</tt>)."
)


class FirstRunDialog(QDialog):
    """Edits a copy of the values; :meth:`apply` writes them (OK) and marks the dialog seen."""

    def __init__(
        self,
        settings: Settings,
        default_outputs: Path,
        models_dir: Path,
        checker: Checker | None = None,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("FirstRunDialog")
        self.setWindowTitle("Welcome to Sfumato")
        self.settings = settings
        self.checker = checker
        self._task: asyncio.Future[None] | None = None

        title = QLabel("<h2>Welcome to Sfumato</h2>")
        intro = QLabel(INTRO_FROZEN if is_frozen() else INTRO_SOURCE)
        intro.setWordWrap(True)
        intro.setTextFormat(Qt.TextFormat.RichText)

        # ---- files
        self.output_edit = QLineEdit(settings.output_dir)
        self.output_edit.setPlaceholderText(str(default_outputs))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_output)
        out_row = QHBoxLayout()
        out_row.addWidget(self.output_edit, 1)
        out_row.addWidget(browse)
        self.models_edit = QLineEdit(str(models_dir))
        self.models_edit.setReadOnly(True)
        self.models_edit.setCursorPosition(0)
        models_hint = QLabel(
            "Put .safetensors checkpoints or diffusers folders there (more "
            "folders in Settings). The built-in model needs no download."
        )
        models_hint.setObjectName("Hint")
        models_hint.setWordWrap(True)
        files_box = QGroupBox("Files")
        fb = QFormLayout(files_box)
        fb.addRow("Images are saved to", out_row)
        fb.addRow("Your models folder", self.models_edit)
        fb.addRow("", models_hint)

        # ---- engine
        self.local_radio = QRadioButton("Run the engine on this computer")
        self.remote_radio = QRadioButton("Connect to an engine elsewhere (a GPU box)")
        group = QButtonGroup(self)
        group.addButton(self.local_radio)
        group.addButton(self.remote_radio)
        (self.remote_radio if settings.engine_mode == REMOTE else self.local_radio).setChecked(True)
        self.python_edit = QLineEdit(settings.engine_python)
        self.python_edit.setPlaceholderText(
            "…/bin/python of an environment with Sfumato's engine installed"
            if is_frozen()
            else "this app's Python (leave empty)"
        )
        py_browse = QPushButton("Browse…")
        py_browse.clicked.connect(self._browse_python)
        py_row = QHBoxLayout()
        py_row.addWidget(self.python_edit, 1)
        py_row.addWidget(py_browse)
        self.url_edit = QLineEdit(settings.remote_url)
        self.url_edit.setPlaceholderText("http://gpu-box:8765")
        self.token_edit = QLineEdit(settings.remote_token)
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setPlaceholderText("the token the engine was started with")
        engine_box = QGroupBox("Engine")
        eb = QVBoxLayout(engine_box)
        eb.addWidget(self.local_radio)
        local_form = QFormLayout()
        local_form.setContentsMargins(24, 0, 0, 4)
        local_form.addRow("Engine Python", py_row)
        eb.addLayout(local_form)
        eb.addWidget(self.remote_radio)
        remote_form = QFormLayout()
        remote_form.setContentsMargins(24, 0, 0, 0)
        remote_form.addRow("URL", self.url_edit)
        remote_form.addRow("Token", self.token_edit)
        eb.addLayout(remote_form)

        # ---- check
        self.check_button = QPushButton("Check the built-in model")
        self.check_button.setObjectName("check_button")
        self.check_result = QLabel(
            "Generates one 64×64 image through the engine to show that everything works."
        )
        self.check_result.setObjectName("Hint")
        self.check_result.setWordWrap(True)
        self.check_image = QLabel()
        self.check_image.setObjectName("check_image")
        self.check_image.setFixedSize(128, 128)
        self.check_image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.check_image.setStyleSheet("border: 1px solid palette(mid);")
        check_box = QGroupBox("Check")
        cb = QHBoxLayout(check_box)
        left = QVBoxLayout()
        left.addWidget(self.check_button, 0, Qt.AlignmentFlag.AlignLeft)
        left.addWidget(self.check_result)
        left.addStretch(1)
        cb.addLayout(left, 1)
        cb.addWidget(self.check_image)

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Start")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        hint = QLabel("You can open this again from Help → First-run setup.")
        hint.setObjectName("Hint")

        lay = QVBoxLayout(self)
        lay.addWidget(title)
        lay.addWidget(intro)
        lay.addWidget(files_box)
        lay.addWidget(engine_box)
        lay.addWidget(check_box)
        lay.addWidget(hint)
        lay.addWidget(buttons)

        self.local_radio.toggled.connect(self._update_enabled)
        self.check_button.clicked.connect(self.run_check)
        self.check_button.setEnabled(checker is not None)
        self._update_enabled()
        # Word-wrapped labels: a dialog's minimum size ignores height-for-width, so ask for it.
        height = max(lay.totalHeightForWidth(WIDTH), lay.totalMinimumSize().height())
        self.setMinimumSize(WIDTH, height)
        self.resize(WIDTH, height)

    # ----------------------------------------------------------------- values
    def values(self) -> dict[str, object]:
        return {
            "engine_mode": REMOTE if self.remote_radio.isChecked() else LOCAL,
            "engine_python": self.python_edit.text().strip(),
            "remote_url": self.url_edit.text().strip(),
            "remote_token": self.token_edit.text().strip(),
            "output_dir": self.output_edit.text().strip(),
        }

    def apply(self) -> bool:
        """Write the values and mark the dialog seen; True if the engine must restart."""
        values = self.values()
        engine_keys = {"engine_mode", "output_dir", "engine_python"}
        if values["engine_mode"] == REMOTE:
            engine_keys |= {"remote_url", "remote_token"}
        changed = {k for k, v in values.items() if getattr(self.settings, k) != v}
        for key, value in values.items():
            setattr(self.settings, key, value)
        self.settings.first_run_done = True
        return bool(changed & engine_keys)

    # ----------------------------------------------------------------- check
    def run_check(self) -> asyncio.Future[None] | None:
        """Start the check; the label and image show its outcome. Returns the task (tests)."""
        if self.checker is None or (self._task is not None and not self._task.done()):
            return self._task
        self.check_button.setEnabled(False)
        self.check_result.setText("Starting the engine and generating a test image…")
        self.check_image.clear()

        async def run() -> None:
            try:
                result = await self.checker()
            except CheckError as exc:
                self.check_result.setText(f"<b>Not working yet:</b> {exc}")
            else:
                pm = QPixmap()
                pm.loadFromData(result.png)
                self.check_image.setPixmap(
                    pm.scaled(
                        128,
                        128,
                        Qt.AspectRatioMode.KeepAspectRatio,
                        Qt.TransformationMode.FastTransformation,
                    )
                )
                self.check_result.setText(f"<b>Works.</b> {result.summary()}")
            finally:
                self.check_button.setEnabled(True)

        self._task = asyncio.ensure_future(run())
        return self._task

    def show_progress(self, text: str) -> None:
        """What the running check is waiting for (engine, model, steps)."""
        if self._task is not None and not self._task.done():
            self.check_result.setText(text)

    # ----------------------------------------------------------------- helpers
    def _update_enabled(self) -> None:
        remote = self.remote_radio.isChecked()
        for w in (self.url_edit, self.token_edit):
            w.setEnabled(remote)
        self.python_edit.setEnabled(not remote)

    def _browse_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Save images to", self.output_edit.text() or str(Path.home())
        )
        if folder:
            self.output_edit.setText(folder)

    def _browse_python(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Python that runs the engine", self.python_edit.text() or str(Path.home())
        )
        if path:
            self.python_edit.setText(path)
