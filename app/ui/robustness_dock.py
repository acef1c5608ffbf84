"""The Robustness panel: how fragile is my prompt? (issue 22)

The prompt's words as chips shaded by importance; the probe's settings and what it will cost;
then one row per perturbation — the rule, the changed word, MMD² and the test's verdict, its
images beside the original's (same seeds, so each column differs only by the prompt) — with
"Use this wording" to take a variant into the Prompt panel.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.state.generation import GenerationSettings
from app.state.robustness import RobustnessState, duration_text, significance
from engine.protocol import RULES, Perturbation, RobustnessReport, split_words
from engine.robustness_protocol import RULE_HELP, RULE_LABELS

from .flow_layout import FlowLayout
from .form import field_label, scrolling_body, section_title
from .theme import DARK, current_scheme, repolish

THUMB = 40
#: Chip colours: no importance → strong importance (warm), mixed over the panel's own colours.
_HOT = (232, 120, 48)


def chip_colours(importance: float | None, scheme_dark: bool) -> tuple[str, str]:
    """(background, text) of a word chip: the more important, the warmer; text black or white,
    whichever contrasts more with the background."""
    base = (58, 61, 68) if scheme_dark else (226, 228, 232)
    a = max(0.0, min(1.0, importance or 0.0))
    rgb = tuple(round(b + (h - b) * a) for b, h in zip(base, _HOT, strict=True))

    def lum(c: tuple[int, ...]) -> float:
        def ch(v: int) -> float:
            v = v / 255
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

        r, g, b = (ch(v) for v in c)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    l_bg = lum(rgb)
    on_black = (l_bg + 0.05) / 0.05
    on_white = 1.05 / (l_bg + 0.05)
    text = "#000000" if on_black >= on_white else "#ffffff"
    return "#{:02x}{:02x}{:02x}".format(*rgb), text


class _Thumbs(QWidget):
    """A row of small images (a group's samples)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.row = FlowLayout(self, spacing=2)  # wraps in a narrow dock; columns stay aligned
        self.labels: list[QLabel] = []

    def show_images(self, images: list[bytes | None]) -> None:
        while len(self.labels) < len(images):
            label = QLabel()
            label.setFixedSize(THUMB, THUMB)
            label.setObjectName("RobustThumb")
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.row.addWidget(label)
            self.labels.append(label)
        for label, data in zip(self.labels, images, strict=False):
            if data is None:
                label.clear()
                label.setText("…")
                continue
            pix = QPixmap()
            pix.loadFromData(data)
            label.setPixmap(
                pix.scaled(
                    THUMB,
                    THUMB,
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            )


class PerturbationRow(QFrame):
    """One perturbation: what changed, how much the images moved, its images, and a button."""

    use_requested = Signal(str)

    def __init__(self, pert: Perturbation, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("RobustRow")
        self.pert = pert
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 6, 0, 6)
        lay.setSpacing(3)
        top = QHBoxLayout()
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.title.setWordWrap(True)  # a long word must not widen the panel past the dock
        self.title.setToolTip(RULE_HELP[pert.rule])
        top.addWidget(self.title, 1)
        self.use_button = QPushButton("Use this wording")
        self.use_button.setToolTip(pert.prompt)
        self.use_button.clicked.connect(lambda: self.use_requested.emit(self.pert.prompt))
        top.addWidget(self.use_button)
        lay.addLayout(top)
        self.verdict = QLabel()
        self.verdict.setObjectName("Hint")
        self.verdict.setWordWrap(True)
        lay.addWidget(self.verdict)
        self.thumbs = _Thumbs()
        lay.addWidget(self.thumbs)

    def update_from(self, pert: Perturbation, images: list[bytes | None], best: bool) -> None:
        self.pert = pert
        mark = " · <b>most robust</b>" if best else ""
        self.title.setText(
            f"{RULE_LABELS[pert.rule]}: {_esc(pert.original)} → <b>{_esc(pert.replaced)}</b>{mark}"
        )
        if pert.mmd2 is None:
            self.verdict.setText("Waiting for its images…")
        else:
            self.verdict.setText(
                f"Shift (MMD²) {pert.mmd2:.3f} · p = {pert.p_value:.3f}: "
                f"{significance(pert.p_value)}"
            )
            self.verdict.setToolTip(
                "MMD² measures how far this wording moves the images from the original's (0 = "
                "not at all; higher = further). p is the permutation test of 'same images': "
                "below 0.05 the change is unlikely to be chance."
            )
        self.thumbs.show_images(images)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class RobustnessDockWidget(QWidget):
    """Public attributes name each control for tests."""

    run_requested = Signal()
    cancel_requested = Signal()
    #: "Use this wording": the prompt to put into the Prompt panel.
    wording_requested = Signal(str)

    def __init__(
        self, state: RobustnessState, settings: GenerationSettings, parent: QWidget | None = None
    ):
        super().__init__(parent)
        self.state, self.settings = state, settings
        self.setObjectName("DockBody")

        intro = QLabel(
            "Which words do the images hang on, and which slips of the keyboard "
            "matter? The probe renders the prompt with shared seeds, deletes each "
            "word to rank them, then tries typos, look-alike letters and "
            "sounds-alike words on the most important ones."
        )
        intro.setObjectName("Hint")
        intro.setWordWrap(True)

        self.chips_box = QWidget()
        self.chips = FlowLayout(self.chips_box)
        self.chips_hint = QLabel()
        self.chips_hint.setObjectName("Hint")
        self.chips_hint.setWordWrap(True)

        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(2, 64)
        self.samples_spin.setToolTip(
            "Images per wording, with the same seeds for every "
            "wording. More images see smaller changes (and cost more)."
        )
        self.top_k_spin = QSpinBox()
        self.top_k_spin.setRange(1, 32)
        self.top_k_spin.setToolTip("Perturb this many of the most important words")
        self.every_word = QCheckBox("every word")
        self.rule_boxes: dict[str, QCheckBox] = {}
        for rule in RULES:
            box = QCheckBox(RULE_LABELS[rule])
            box.setToolTip(RULE_HELP[rule])
            self.rule_boxes[rule] = box
        self.cost_label = QLabel()
        self.cost_label.setObjectName("Hint")
        self.cost_label.setWordWrap(True)
        self.run_button = QPushButton("Probe prompt")
        self.run_button.setObjectName("PrimaryButton")
        self.cancel_button = QPushButton("Cancel")
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(True)
        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.original_label = QLabel("Original")
        self.original_label.setObjectName("FieldLabel")
        self.original_label.setWordWrap(True)
        self.original_thumbs = _Thumbs()
        self.rows_box = QVBoxLayout()
        self.rows_box.setSpacing(0)
        self.rows: list[PerturbationRow] = []
        self.results_hint = QLabel("Results appear here as each wording is rendered.")
        self.results_hint.setObjectName("Hint")
        self.results_hint.setWordWrap(True)

        form = QGridLayout()
        form.setHorizontalSpacing(8)
        form.addWidget(field_label("Images per wording", self.samples_spin), 0, 0)
        form.addWidget(self.samples_spin, 0, 1)
        form.addWidget(field_label("Words to perturb", self.top_k_spin), 1, 0)
        words = QHBoxLayout()
        words.addWidget(self.top_k_spin)
        words.addWidget(self.every_word)
        words.addStretch(1)
        form.addLayout(words, 1, 1)
        form.addWidget(field_label("Mistakes to try"), 2, 0, Qt.AlignmentFlag.AlignTop)
        rules = QVBoxLayout()
        for box in self.rule_boxes.values():
            rules.addWidget(box)
        form.addLayout(rules, 2, 1)
        form.setColumnStretch(1, 1)

        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)

        lay = QVBoxLayout()
        lay.setSpacing(8)
        lay.addWidget(section_title("Prompt robustness"))
        lay.addWidget(intro)
        lay.addWidget(section_title("Words"))
        lay.addWidget(self.chips_box)
        lay.addWidget(self.chips_hint)
        lay.addWidget(section_title("Probe"))
        lay.addLayout(form)
        lay.addWidget(self.cost_label)
        lay.addLayout(buttons)
        lay.addWidget(self.progress_bar)
        lay.addWidget(self.message_label)
        lay.addWidget(section_title("Results"))
        lay.addWidget(self.results_hint)
        lay.addWidget(self.original_label)
        lay.addWidget(self.original_thumbs)
        lay.addLayout(self.rows_box)
        lay.addStretch(1)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scrolling_body(lay))

        self.samples_spin.valueChanged.connect(lambda v: setattr(state, "samples", v))
        self.top_k_spin.valueChanged.connect(self._top_k_changed)
        self.every_word.toggled.connect(self._top_k_changed)
        for box in self.rule_boxes.values():
            box.toggled.connect(self._rules_changed)
        self.run_button.clicked.connect(self.run_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        for prop in (
            "samples",
            "top_k",
            "rules",
            "status",
            "progress",
            "report",
            "images",
            "message",
            "seconds_per_step",
        ):
            getattr(state, f"{prop}_changed").connect(lambda _v: self.refresh())
        for prop in ("prompt", "steps", "width", "height"):
            signal = getattr(settings, f"{prop}_changed", None)
            if signal is not None:
                signal.connect(lambda _v: self.refresh())
        self.refresh()

    # ----------------------------------------------------------------- edits
    def _top_k_changed(self, *_: object) -> None:
        every = self.every_word.isChecked()
        self.top_k_spin.setEnabled(not every)
        self.state.top_k = 0 if every else self.top_k_spin.value()

    def _rules_changed(self, *_: object) -> None:
        self.state.rules = [r for r, box in self.rule_boxes.items() if box.isChecked()]

    # ----------------------------------------------------------------- view
    def refresh(self) -> None:
        s = self.state
        for widget, value in (
            (self.samples_spin, s.samples),
            (self.top_k_spin, s.top_k or self.top_k_spin.value()),
        ):
            if widget.value() != value:
                widget.blockSignals(True)
                widget.setValue(value)
                widget.blockSignals(False)
        self.every_word.blockSignals(True)
        self.every_word.setChecked(s.top_k == 0)
        self.every_word.blockSignals(False)
        self.top_k_spin.setEnabled(s.top_k != 0)
        for rule, box in self.rule_boxes.items():
            box.blockSignals(True)
            box.setChecked(rule in s.rules)
            box.blockSignals(False)

        busy = s.status in ("queued", "running")
        base = self.settings.to_params()
        self.cost_label.setText(s.cost_text(base))
        self.run_button.setEnabled(not busy and bool(s.rules) and bool(split_words(base.prompt)))
        self.cancel_button.setVisible(busy)
        step, total, eta = s.progress
        self.progress_bar.setVisible(busy)
        self.progress_bar.setRange(0, max(1, total))
        self.progress_bar.setValue(min(step, total))
        left = f" · {duration_text(eta)} left" if eta else ""
        self.progress_bar.setFormat(
            f"{'Queued' if s.status == 'queued' else 'Rendering'} %p %{left}"
        )
        level, text = s.message
        name = "FieldError" if level == "error" else "Hint"
        if self.message_label.objectName() != name:
            self.message_label.setObjectName(name)
            repolish(self.message_label)
        self.message_label.setText(text)
        self.message_label.setVisible(bool(text))
        self._show_chips(s.report)
        self._show_results(s.report)

    def _show_chips(self, report: RobustnessReport | None) -> None:
        prompt = report.prompt if report is not None else self.settings.prompt
        words = split_words(prompt)
        importance = {w.index: w for w in report.words} if report is not None else {}
        while self.chips.count():
            item = self.chips.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        for w in words:
            known = importance.get(w.index)
            value = known.importance if known is not None else None
            bg, fg = chip_colours(value, current_scheme() == DARK)
            chip = QLabel(w.text)
            chip.setObjectName("WordChip")
            chip.setStyleSheet(
                f"QLabel#WordChip {{ background: {bg}; color: {fg}; "
                "border-radius: 4px; padding: 2px 6px; }"
            )
            if known is not None and known.mmd2 is not None:
                chip.setToolTip(
                    f"Deleting “{w.text}” shifts the images by MMD² "
                    f"{known.mmd2:.3f} (p = {known.p_value:.3f}: "
                    f"{significance(known.p_value)})"
                )
            self.chips.addWidget(chip)
        if not words:
            self.chips_hint.setText("Write a prompt in the Prompt panel; its words appear here.")
        elif report is None or not any(w.mmd2 is not None for w in report.words):
            self.chips_hint.setText(
                "After a probe, the warmer a word, the more the images hang on it."
            )
        else:
            ranked = sorted((w for w in report.words if w.mmd2 is not None), key=lambda w: -w.mmd2)
            self.chips_hint.setText(
                "The warmer a word, the more the images hang on it. Most: "
                + ", ".join(f"“{w.word}”" for w in ranked[:3])
                + "."
            )
        self.chips_box.updateGeometry()

    def _show_results(self, report: RobustnessReport | None) -> None:
        s = self.state
        has = report is not None
        self.original_label.setVisible(has)
        self.original_thumbs.setVisible(has)
        self.results_hint.setVisible(not has or not report.perturbations)
        if not has:
            self._set_rows([])
            return
        self.original_label.setText(
            f"Original: “{report.prompt}” (seeds {report.seed}…{report.seed + report.samples - 1})"
        )
        self.original_thumbs.show_images(s.group_images(0))
        best = report.most_robust()
        self._set_rows(report.perturbations)
        for row, pert in zip(self.rows, report.perturbations, strict=True):
            row.update_from(
                pert, s.group_images(pert.group), best is not None and best.group == pert.group
            )

    def _set_rows(self, perts: list[Perturbation]) -> None:
        while len(self.rows) > len(perts):
            row = self.rows.pop()
            self.rows_box.removeWidget(row)
            row.deleteLater()
        while len(self.rows) < len(perts):
            row = PerturbationRow(perts[len(self.rows)])
            row.use_requested.connect(self.wording_requested)
            self.rows_box.addWidget(row)
            self.rows.append(row)
