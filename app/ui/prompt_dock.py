"""The Prompt dock: everything a text-to-image job needs, bound to GenerationSettings."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.state.engine import EngineInfo
from app.state.generation import SIZE_PRESETS, GenerationSettings, snap8
from app.state.jobs import JobsState
from app.state.model_size import size_warning
from app.state.prompt_tools import PromptTools
from app.state.prompt_vocabulary import GENERAL_PLACEHOLDER
from app.state.sampler import sampler_summary
from engine.protocol import MAX_SEED, MAX_SIDE

from .binding import bind
from .drawn_icons import dice_icon
from .prompt_assist import PromptAssist
from .prompt_edit import PromptEdit
from .prompt_tools import PromptLanguageTools
from .theme import repolish

CUSTOM_SIZE = "Custom size"


class SeedBox(QDoubleSpinBox):
    """Seeds go up to 2³²−1, past QSpinBox's int32; −1 reads "Random"."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setDecimals(0)
        self.setRange(-1, MAX_SEED)
        self.setSpecialValueText("Random")
        self.setSingleStep(1)
        self.setAccelerated(True)
        self.setToolTip("Seed: the same seed and settings give the same image. Random = −1.")

    def textFromValue(self, value: float) -> str:
        return str(int(value))


class SideSpin(QSpinBox):
    """Width or height: can show no number while the size is not known yet (the engine has
    not said which model, hence which native size, comes first)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._pending = False

    def set_pending(self, pending: bool) -> None:
        self._pending = pending
        self.setEnabled(not pending)
        self.setSuffix("" if pending else " px")  # also redraws the number

    def textFromValue(self, value: int) -> str:
        return "" if self._pending else super().textFromValue(value)


class PromptDockWidget(QWidget):
    """The form. Public attributes name each control for tests (and objectName matches)."""

    #: The sampler summary was clicked: show the Sampler panel.
    open_sampler_panel = Signal()

    def __init__(
        self,
        settings: GenerationSettings,
        engine: EngineInfo,
        jobs: JobsState,
        parent: QWidget | None = None,
        prompt_tools: PromptTools | None = None,
    ):
        super().__init__(parent)
        self.settings = settings
        self.engine = engine
        self.jobs = jobs
        self.setObjectName("DockBody")
        self._error_labels: dict[str, QLabel] = {}
        self._error_widgets: dict[str, list[QWidget]] = {}
        #: The user picked a size before the engine listed its models (see size_pending).
        self._size_chosen = False

        self.prompt_edit = PromptEdit(GENERAL_PLACEHOLDER, 4)
        self.negative_edit = PromptEdit("What to avoid: blurry, text, watermark…", 2)
        self.negative_edit.setMaximumHeight(self.negative_edit.fontMetrics().lineSpacing() * 5 + 14)
        self.prompt_edit.setMaximumHeight(self.prompt_edit.fontMetrics().lineSpacing() * 12 + 14)
        self.size_preset = QComboBox()
        self.width_spin = self._side_spin("Width in pixels (multiple of 8)")
        self.height_spin = self._side_spin("Height in pixels (multiple of 8)")
        self.swap_button = self._icon_button("⇄", "Swap width and height")
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 1000)
        self.steps_spin.setToolTip("Denoising steps: more is slower and usually finer")
        self.cfg_spin = QDoubleSpinBox()
        self.cfg_spin.setRange(0.0, 100.0)
        self.cfg_spin.setSingleStep(0.5)
        self.cfg_spin.setDecimals(1)
        self.cfg_spin.setToolTip("Classifier-free guidance: how strictly to follow the prompt")
        # The sampler is chosen in the Sampler panel (with its options); here a summary that
        # opens it, so the two docks never offer the same choice twice.
        self.sampler_button = QPushButton()
        self.sampler_button.setObjectName("SamplerSummary")
        self.sampler_button.setToolTip("Sampler and its options: click to open the Sampler panel")
        self.sampler_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.seed_spin = SeedBox()
        self.dice_button = self._icon_button("", "Random seed for every job (−1)")
        self.dice_button.setIcon(dice_icon())
        self.reuse_button = self._icon_button("♻", "Reuse the seed of the image on the canvas")
        self.batch_size_spin = QSpinBox()
        self.batch_size_spin.setRange(1, 16)
        self.batch_size_spin.setToolTip("Images per batch (all at once, more memory)")
        self.batch_count_spin = QSpinBox()
        self.batch_count_spin.setRange(1, 100)
        self.batch_count_spin.setToolTip("Batches one after another (same memory, more time)")
        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("GenerateButton")
        self.generate_button.setToolTip("Queue a job (Ctrl+Enter). Works while another runs.")
        self.generate_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.queue_hint = QLabel("Ctrl+Enter")
        self.queue_hint.setObjectName("Hint")
        self.queue_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        for name in (
            "prompt_edit",
            "negative_edit",
            "size_preset",
            "width_spin",
            "height_spin",
            "steps_spin",
            "cfg_spin",
            "sampler_button",
            "seed_spin",
            "dice_button",
            "reuse_button",
            "batch_size_spin",
            "batch_count_spin",
            "generate_button",
        ):
            getattr(self, name).setObjectName(getattr(self, name).objectName() or name)
        self.generate_button.setObjectName("GenerateButton")

        # Long preset names and 10-digit seeds must not force the dock wider than it is.
        self.size_preset.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.size_preset.setMinimumContentsLength(8)
        self.sampler_button.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        for widget, width in (
            (self.width_spin, 72),
            (self.height_spin, 72),
            (self.seed_spin, 96),
            (self.steps_spin, 64),
            (self.cfg_spin, 64),
            (self.batch_size_spin, 64),
            (self.batch_count_spin, 64),
        ):
            widget.setMinimumWidth(width)
        # Placeholder, "Prompt ideas", completion and hint from the active model's vocabulary.
        self.prompt_assist = PromptAssist(self.prompt_edit, engine, settings)
        # Weights, BREAK and LoRA tags: highlighting, tokens per chunk, LoRA picker/completion.
        self.prompt_tools = PromptLanguageTools(
            self.prompt_edit, self.negative_edit, prompt_tools or PromptTools()
        )
        self._layout()
        self._bind()

    # ----------------------------------------------------------------- construction
    def _side_spin(self, tip: str) -> SideSpin:
        spin = SideSpin()
        spin.setRange(8, MAX_SIDE)
        spin.setSingleStep(8)
        spin.setToolTip(tip)
        return spin

    def _icon_button(self, text: str, tip: str) -> QToolButton:
        b = QToolButton()
        b.setObjectName("IconButton")
        b.setText(text)
        b.setToolTip(tip)
        b.setCursor(Qt.CursorShape.PointingHandCursor)
        return b

    def _layout(self) -> None:
        form = QGridLayout()
        form.setHorizontalSpacing(8)
        form.setVerticalSpacing(4)
        form.setColumnStretch(1, 1)
        form.setColumnStretch(3, 1)
        row = 0

        def section(title: str) -> None:
            nonlocal row
            label = QLabel(title.upper())
            label.setObjectName("SectionTitle")
            form.addWidget(label, row, 0, 1, 4)
            row += 1

        def error_row(*names: str, widgets: list[QWidget]) -> None:
            nonlocal row
            label = QLabel()
            label.setObjectName("FieldError")
            label.setWordWrap(True)
            label.hide()
            form.addWidget(label, row, 0, 1, 4)
            for n in names:
                self._error_labels[n] = label
            for n, w in zip(names, widgets, strict=False):
                self._error_widgets.setdefault(n, []).append(w)
            row += 1

        def labelled(text: str, widget: QWidget, col: int) -> None:
            label = QLabel(text)
            label.setObjectName("FieldLabel")
            label.setBuddy(widget)
            form.addWidget(label, row, col)
            form.addWidget(widget, row, col + 1)

        section("Prompt")
        form.addWidget(
            self.prompt_assist.ideas_button, row - 1, 2, 1, 2, Qt.AlignmentFlag.AlignRight
        )
        form.addWidget(self.prompt_edit, row, 0, 1, 4)
        row += 1
        form.addWidget(self.prompt_assist.hint_label, row, 0, 1, 4)
        row += 1
        tools = QHBoxLayout()
        tools.setSpacing(6)
        tools.addWidget(self.prompt_tools.lora_button)
        tools.addStretch(1)
        tools.addWidget(self.prompt_tools.prompt_tokens)
        form.addLayout(tools, row, 0, 1, 4)
        row += 1
        error_row("prompt", widgets=[self.prompt_edit])
        section("Negative prompt")
        form.addWidget(
            self.prompt_tools.negative_tokens, row - 1, 2, 1, 2, Qt.AlignmentFlag.AlignRight
        )
        form.addWidget(self.negative_edit, row, 0, 1, 4)
        row += 1
        error_row("negative_prompt", widgets=[self.negative_edit])

        section("Size")
        form.addWidget(self.size_preset, row, 0, 1, 4)
        row += 1
        size_row = QHBoxLayout()
        size_row.setSpacing(6)
        times = QLabel("×")
        times.setObjectName("Muted")
        size_row.addWidget(self.width_spin, 1)
        size_row.addWidget(times)
        size_row.addWidget(self.height_spin, 1)
        size_row.addWidget(self.swap_button)
        form.addLayout(size_row, row, 0, 1, 4)
        row += 1
        error_row("width", "height", widgets=[self.width_spin, self.height_spin])
        # far from the model's native size: a warning, not an error (model_size.py)
        self.size_warning_label = QLabel()
        self.size_warning_label.setObjectName("SizeWarning")
        self.size_warning_label.setWordWrap(True)
        self.size_warning_label.hide()
        form.addWidget(self.size_warning_label, row, 0, 1, 4)
        row += 1

        section("Sampling")
        sampler_label = QLabel("Sampler")
        sampler_label.setObjectName("FieldLabel")
        form.addWidget(sampler_label, row, 0)
        form.addWidget(self.sampler_button, row, 1, 1, 3)
        row += 1
        error_row("sampler", widgets=[self.sampler_button])
        labelled("Steps", self.steps_spin, 0)
        labelled("CFG", self.cfg_spin, 2)
        row += 1
        error_row("steps", "cfg_scale", widgets=[self.steps_spin, self.cfg_spin])
        seed_row = QHBoxLayout()
        seed_row.setSpacing(4)
        seed_row.addWidget(self.seed_spin, 1)
        seed_row.addWidget(self.dice_button)
        seed_row.addWidget(self.reuse_button)
        seed_label = QLabel("Seed")
        seed_label.setObjectName("FieldLabel")
        form.addWidget(seed_label, row, 0)
        form.addLayout(seed_row, row, 1, 1, 3)
        row += 1
        error_row("seed", widgets=[self.seed_spin])

        section("Batch")
        labelled("Size", self.batch_size_spin, 0)
        labelled("Count", self.batch_count_spin, 2)
        row += 1
        error_row(
            "batch_size", "batch_count", widgets=[self.batch_size_spin, self.batch_count_spin]
        )

        inner = QWidget()
        inner.setObjectName("DockBody")
        inner_lay = QVBoxLayout(inner)
        inner_lay.setContentsMargins(12, 10, 12, 10)
        inner_lay.addLayout(form)
        inner_lay.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(inner)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        # Generate and its hint live in the window's toolbar (GenerateBar), in view whichever
        # panel is open; the panel still owns and updates them.
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        outer.addWidget(scroll, 1)

        self.size_preset.addItem(CUSTOM_SIZE)
        for label, w, h in SIZE_PRESETS:
            self.size_preset.addItem(label, (w, h))

    def _bind(self) -> None:
        s = self.settings
        bind(s, "prompt", self.prompt_edit)
        bind(s, "negative_prompt", self.negative_edit)
        bind(s, "width", self.width_spin)
        bind(s, "height", self.height_spin)
        bind(s, "steps", self.steps_spin)
        bind(s, "cfg_scale", self.cfg_spin)
        bind(s, "seed", self.seed_spin)
        bind(s, "batch_size", self.batch_size_spin)
        bind(s, "batch_count", self.batch_count_spin)
        self._show_sampler()
        s.sampler_changed.connect(lambda _v: self._show_sampler())
        s.options_changed.connect(lambda _v: self._show_sampler())
        self.sampler_button.clicked.connect(self.open_sampler_panel)

        self.swap_button.clicked.connect(s.swap_size)
        self.dice_button.clicked.connect(s.randomize_seed)
        self.size_preset.activated.connect(self._on_preset)
        s.width_changed.connect(lambda _v: self._sync_preset())
        s.height_changed.connect(lambda _v: self._sync_preset())
        self._sync_preset()
        # Width/height snap to a multiple of 8 when editing ends; typing 65 then Tab gives 64.
        for spin in (self.width_spin, self.height_spin):
            spin.editingFinished.connect(lambda sp=spin: sp.setValue(snap8(sp.value())))
        s.errors_changed.connect(self._show_errors)
        for signal in (
            s.width_changed,
            s.height_changed,
            self.engine.models_changed,
            self.engine.health_changed,
        ):
            signal.connect(lambda _v: self._show_size_warning())
        self._show_size_warning()
        self.jobs.changed.connect(self._update_hint)
        self.engine.models_listed_changed.connect(lambda _v: self._show_size_pending())
        self.engine.models_listed_changed.connect(lambda _v: self._show_size_warning())
        self._show_size_pending()
        self._update_hint()

    # ----------------------------------------------------------------- reactions
    def _show_sampler(self) -> None:
        self.sampler_button.setText(
            f"{sampler_summary(self.settings.sampler, self.settings.options)}  ›"
        )

    def _on_preset(self, index: int) -> None:
        data = self.size_preset.itemData(index)
        if data:
            self._size_chosen = True  # a size the user picked is known, engine or not
            self.settings.set_size(*data)
            self._show_size_pending()

    def _sync_preset(self) -> None:
        if self.size_pending:
            return  # _show_size_pending shows it once the size is known
        size = (self.settings.width, self.settings.height)
        for i in range(1, self.size_preset.count()):
            if tuple(self.size_preset.itemData(i)) == size:
                self.size_preset.setCurrentIndex(i)
                return
        self.size_preset.setCurrentIndex(0)

    def _show_size_warning(self) -> None:
        # no warning about a size still pending (the engine has not listed its models)
        text = (
            size_warning(self.settings.width, self.settings.height, self.engine.active_model)
            if self.engine.models_listed
            else ""
        )
        self.size_warning_label.setText(text)
        self.size_warning_label.setVisible(bool(text))

    @property
    def size_pending(self) -> bool:
        """No size to show yet: the engine has not listed its models, the user chose none."""
        return not self.engine.models_listed and not self._size_chosen

    def _show_size_pending(self) -> None:
        """Until the engine lists its models the size follows the model about to be chosen
        (64 px for the built-in one, 512 for SD 1.5): show no number rather than a default
        that is about to change. The preset list stays open to a size the user picks."""
        pending = self.size_pending
        self.swap_button.setEnabled(not pending)
        for spin in (self.width_spin, self.height_spin):
            spin.set_pending(pending)
        if pending:
            self.size_preset.setCurrentIndex(-1)
        else:
            self._sync_preset()

    def _show_errors(self, errors: dict[str, str]) -> None:
        by_label: dict[QLabel, list[str]] = {}
        for name, label in self._error_labels.items():
            by_label.setdefault(label, [])
            if name in errors:
                prefix = {
                    "width": "Width: ",
                    "height": "Height: ",
                    "steps": "Steps: ",
                    "cfg_scale": "CFG: ",
                    "batch_size": "Batch size: ",
                    "batch_count": "Batch count: ",
                }.get(name, "")
                by_label[label].append(prefix + errors[name])
        for label, messages in by_label.items():
            label.setText("\n".join(messages))
            label.setVisible(bool(messages))
        for name, widgets in self._error_widgets.items():
            for w in widgets:
                flag = "true" if name in errors else "false"
                if w.property("error") != flag:
                    w.setProperty("error", flag)
                    repolish(w)

    def _update_hint(self) -> None:
        n = self.jobs.active_count
        self.queue_hint.setText(
            "Ctrl+Enter" if n == 0 else f"Ctrl+Enter · {n} job{'s' if n != 1 else ''} in the queue"
        )

    def error_text(self, name: str) -> str:
        """The message shown under field ``name`` (for tests)."""
        label = self._error_labels.get(name)
        return label.text() if label is not None and not label.isHidden() else ""

    def field_has_error(self, name: str) -> bool:
        return any(w.property("error") == "true" for w in self._error_widgets.get(name, []))


GENERATE_SHORTCUTS = (QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter"))
