"""The Compare… dialog: which samplers × step counts (× CFG values) to render side by side."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.state.grid import GridChoice, parse_numbers
from app.state.sampler import listed
from engine.protocol import GenerateParams, SamplerInfo

DEFAULT_STEPS = "10, 20, 30"
#: Item data with the sampler's other names (A1111's, k-diffusion's) for the search field.
SEARCH_ROLE = Qt.ItemDataRole.UserRole + 1


class CompareDialog(QDialog):
    """Builds a :class:`GridChoice`; the caller submits it (dialogs never call the client)."""

    def __init__(
        self,
        samplers: list[SamplerInfo],
        current: GenerateParams,
        missing_fit: set[str] | None = None,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("CompareDialog")
        self.setWindowTitle("Compare samplers")
        self.current = current
        intro = QLabel(
            f"Render “{_short(current.prompt)}” with seed "
            f"{current.seed if current.seed >= 0 else 'random (one for all cells)'} "
            f"at {current.width}×{current.height} with each sampler and step count."
        )
        intro.setWordWrap(True)
        intro.setObjectName("Muted")
        self.sampler_list = QListWidget()
        self.sampler_list.setObjectName("compare_samplers")
        missing_fit = missing_fit or set()
        for info in listed(samplers):
            item = QListWidgetItem(info.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(
                Qt.CheckState.Checked if info.name == current.sampler else Qt.CheckState.Unchecked
            )
            tip = info.description
            if info.name in missing_fit:
                item.setText(f"{info.name}  (needs a fit)")
                tip += "\nNeeds an analytic fit of this model first: its cells would fail."
            item.setData(Qt.ItemDataRole.UserRole, info.name)
            item.setData(SEARCH_ROLE, " ".join(info.aliases))
            item.setToolTip(tip)
            self.sampler_list.addItem(item)
        self.sampler_list.setMinimumHeight(220)
        #: Narrows the list (21 samplers and more) by name or description; ticks are kept.
        self.search_edit = QLineEdit()
        self.search_edit.setObjectName("compare_search")
        self.search_edit.setPlaceholderText("Search samplers (e.g. dpm, karras, ancestral)")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.textChanged.connect(self.filter_samplers)
        self.steps_edit = QLineEdit(
            DEFAULT_STEPS if current.steps in (10, 20, 30) else f"10, {current.steps}, 30"
        )
        self.steps_edit.setObjectName("compare_steps")
        self.steps_edit.setPlaceholderText("e.g. 10, 20, 30")
        self.cfg_edit = QLineEdit()
        self.cfg_edit.setObjectName("compare_cfg")
        self.cfg_edit.setPlaceholderText(f"optional, e.g. 4, 7 (now {current.cfg_scale:g})")
        self.summary = QLabel()
        self.summary.setObjectName("Hint")
        self.problem_label = QLabel()
        self.problem_label.setObjectName("FieldError")
        none_button = QPushButton("None")
        none_button.clicked.connect(lambda: self._check_all(False))
        form = QGridLayout()
        form.setHorizontalSpacing(10)
        for r, (text, w) in enumerate(
            (("Step counts", self.steps_edit), ("CFG values", self.cfg_edit))
        ):
            lab = QLabel(text)
            lab.setObjectName("FieldLabel")
            form.addWidget(lab, r, 0)
            form.addWidget(w, r, 1)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.run_button = self.buttons.addButton("Run", QDialogButtonBox.ButtonRole.AcceptRole)
        self.run_button.setObjectName("compare_run")
        self.buttons.addButton(none_button, QDialogButtonBox.ButtonRole.ResetRole)
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        title = QLabel("SAMPLERS")
        title.setObjectName("SectionTitle")
        lay.addWidget(title)
        lay.addWidget(self.search_edit)
        lay.addWidget(self.sampler_list, 1)
        lay.addLayout(form)
        lay.addWidget(self.summary)
        lay.addWidget(self.problem_label)
        lay.addWidget(self.buttons)
        self.resize(420, 560)
        self.sampler_list.itemChanged.connect(lambda _i: self._update())
        self.steps_edit.textChanged.connect(lambda _t: self._update())
        self.cfg_edit.textChanged.connect(lambda _t: self._update())
        self._update()

    # ----------------------------------------------------------------- reading the form
    def set_samplers(self, names: list[str]) -> None:
        for i in range(self.sampler_list.count()):
            item = self.sampler_list.item(i)
            on = item.data(Qt.ItemDataRole.UserRole) in names
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def filter_samplers(self, text: str) -> int:
        """Show the samplers whose name, aliases or description hold every word of ``text``
        (ticked ones stay ticked while hidden); returns how many are shown."""
        words = text.lower().split()
        shown = 0
        for i in range(self.sampler_list.count()):
            item = self.sampler_list.item(i)
            hay = f"{item.text()} {item.toolTip()} {item.data(SEARCH_ROLE) or ''}".lower()
            hide = any(w not in hay for w in words)
            item.setHidden(hide)
            shown += not hide
        return shown

    def _check_all(self, on: bool) -> None:
        self.set_samplers(
            []
            if not on
            else [
                self.sampler_list.item(i).data(Qt.ItemDataRole.UserRole)
                for i in range(self.sampler_list.count())
            ]
        )

    def choice(self) -> tuple[GridChoice, str]:
        """The choice and why it cannot run ('' if it can)."""
        names = [
            self.sampler_list.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.sampler_list.count())
            if self.sampler_list.item(i).checkState() == Qt.CheckState.Checked
        ]
        try:
            steps = parse_numbers(self.steps_edit.text(), int)
        except ValueError as exc:
            return GridChoice(names), f"Step counts: {exc}"
        try:
            cfgs = parse_numbers(self.cfg_edit.text(), float)
        except ValueError as exc:
            return GridChoice(names, steps), f"CFG values: {exc}"
        choice = GridChoice(names, steps, cfgs)
        return choice, choice.problem()

    def _update(self) -> None:
        choice, problem = self.choice()
        n = choice.cell_count
        self.summary.setText(
            f"{n} cell{'s' if n != 1 else ''}: {len(choice.samplers)} sampler"
            f"{'s' if len(choice.samplers) != 1 else ''} × "
            f"{len(choice.steps)} step count{'s' if len(choice.steps) != 1 else ''}"
            + (f" × {len(choice.cfg_scales)} CFG" if len(choice.cfg_scales) > 1 else "")
            + f" · {sum(choice.steps) * len(choice.samplers) * max(1, len(choice.cfg_scales))} steps in all"
        )
        self.problem_label.setText(problem)
        self.problem_label.setVisible(bool(problem))
        self.run_button.setEnabled(not problem)
        self.run_button.setText(f"Run {n} cells" if not problem else "Run")

    def _accept(self) -> None:
        _choice, problem = self.choice()
        if not problem:
            self.accept()


def _short(text: str, n: int = 60) -> str:
    text = " ".join(text.split()) or "(empty prompt)"
    return text if len(text) <= n else text[: n - 1] + "…"
