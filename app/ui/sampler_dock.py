"""The Sampler dock: sampler list, the options that apply to it, steps, fits, Compare…

Bound to :class:`GenerationSettings` (sampler, steps and the sampler options) and
:class:`FitsState`; "Fit now" and "Compare…" are signals the main window forwards.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QSpinBox,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.state.engine import EngineInfo
from app.state.generation import GenerationSettings
from app.state.jobs import JobsState
from app.state.sampler import (
    FOREIGN_OPTIONS,
    STEP_PRESETS,
    FitsState,
    analytic_note,
    analytic_toggle,
    family_note,
    fitted_methods_note,
    flow_options,
    flow_value,
    listed,
    model_family,
    option,
    resolve,
    sampler_switch,
    schedule_label,
)
from engine.protocol import JobState, SamplerInfo

from .form import field_label, scrolling_body, section_title

NAME_ROLE = Qt.ItemDataRole.UserRole
DESC_ROLE = Qt.ItemDataRole.UserRole + 1
TAG_ROLE = Qt.ItemDataRole.UserRole + 2
DIM_ROLE = Qt.ItemDataRole.UserRole + 3  # greyed: cannot do what the settings ask (uncertainty)
DEFAULT = "Model default"
#: The fits this panel shows a row for (uncertainty has its own panel).
PANEL_FITS = ("analytic", "calibration")
MAX_SLIDER_STEPS = 150


class SamplerDelegate(QStyledItemDelegate):
    """Two lines per sampler: its name, then its description (muted, elided); a tag at right."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        fm = option.fontMetrics
        return QSize(200, fm.height() * 2 + 14)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        painter.save()
        r = option.rect
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hover = bool(option.state & QStyle.StateFlag.State_MouseOver)
        if selected or hover:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#4a3a22") if selected else QColor("#26282d"))
            painter.drawRoundedRect(r.adjusted(2, 1, -2, -1), 5, 5)
        fm = option.fontMetrics
        pad = 10
        name = index.data(NAME_ROLE) or ""
        desc = index.data(DESC_ROLE) or ""
        tag = index.data(TAG_ROLE) or ""
        bold = QFont(option.font)
        bold.setWeight(QFont.Weight.DemiBold)
        tag_w = 0
        if tag:
            small = QFont(option.font)
            small.setPointSizeF(max(6.5, option.font.pointSizeF() * 0.82))
            painter.setFont(small)
            tw = painter.fontMetrics().horizontalAdvance(tag) + 12
            tag_rect = QRect(r.right() - tw - pad, r.top() + 6, tw, fm.height())
            warn = tag.startswith(("needs", "no "))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#4d3424") if warn else QColor("#24402e"))
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.drawRoundedRect(tag_rect, 7, 7)
            painter.setPen(QColor("#f2b98a") if warn else QColor("#9fd8b0"))
            painter.drawText(tag_rect, Qt.AlignmentFlag.AlignCenter, tag)
            tag_w = tw + 6
        painter.setFont(bold)
        pal = option.palette
        dim = bool(index.data(DIM_ROLE))
        painter.setPen(
            QColor("#f2e4cc")
            if selected
            else pal.color(pal.ColorRole.PlaceholderText if dim else pal.ColorRole.Text)
        )
        painter.drawText(
            QRect(r.left() + pad, r.top() + 5, r.width() - 2 * pad - tag_w, fm.height()),
            Qt.AlignmentFlag.AlignVCenter,
            name,
        )
        painter.setFont(option.font)
        painter.setPen(QColor("#b9a98f") if selected else pal.color(pal.ColorRole.PlaceholderText))
        text = fm.elidedText(desc, Qt.TextElideMode.ElideRight, r.width() - 2 * pad)
        painter.drawText(
            QRect(r.left() + pad, r.top() + 7 + fm.height(), r.width() - 2 * pad, fm.height()),
            Qt.AlignmentFlag.AlignVCenter,
            text,
        )
        painter.restore()


class FitRow(QWidget):
    """A toggle, a status line and a "Fit now" button for one kind of fit."""

    def __init__(self, title: str, kind: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.kind = kind
        self.toggle = QCheckBox(title)
        self.toggle.setObjectName(f"{kind}_toggle")
        self.status = QLabel()
        self.status.setObjectName("Hint")
        self.status.setWordWrap(True)
        self.fit_button = QToolButton()
        self.fit_button.setObjectName(f"{kind}_fit_button")
        self.fit_button.setText("Fit now")
        self.fit_button.setCursor(Qt.CursorShape.PointingHandCursor)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.toggle, 1)
        top.addWidget(self.fit_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 2, 0, 2)
        lay.setSpacing(1)
        lay.addLayout(top)
        lay.addWidget(self.status)
        self.status.setIndent(24)

    def show_fit(
        self,
        fitting: tuple[str, JobState, int | None] | None,
        fits: FitsState,
        doing: str,
        where: str = "",
    ) -> None:
        """Status line and button from the fit's progress (``JobsState.fit_progress``):
        "<doing>… (running · 3%<where>)" while one is queued or running, else what is fitted."""
        if fitting is not None:
            _id, state, pct = fitting
            more = f" · {pct}%" if pct is not None else ""
            self.status.setText(f"{doing}… ({state.value}{more}{where})")
        else:
            self.status.setText(fits.describe(self.kind).capitalize())
        self.fit_button.setEnabled(fitting is None and bool(fits.model))
        self.fit_button.setText("Refit" if fits.latest(self.kind) is not None else "Fit now")


class SamplerDockWidget(QWidget):
    """The Sampler panel. Public attributes name each control for tests."""

    #: "Fit now" pressed: 'analytic' or 'calibration'.
    fit_requested = Signal(str)
    #: "Compare samplers…" pressed.
    compare_requested = Signal()

    def __init__(
        self,
        settings: GenerationSettings,
        engine: EngineInfo,
        fits: FitsState,
        jobs: JobsState,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.settings, self.engine, self.fits, self.jobs = settings, engine, fits, jobs
        self.setObjectName("DockBody")
        self._updating = False
        self._fits_shown: tuple[object, ...] = ()  # JobsState.fit_progress of PANEL_FITS

        self.sampler_list = QListWidget()
        self.sampler_list.setObjectName("SamplerList")
        self.sampler_list.setItemDelegate(SamplerDelegate(self.sampler_list))
        self.sampler_list.setMouseTracking(True)
        self.sampler_list.setMinimumHeight(150)
        self.sampler_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.description = QLabel()
        self.description.setObjectName("Muted")
        self.description.setWordWrap(True)
        # Said when the sampler was switched for the model's family (never silently).
        self.switch_note = QLabel()
        self.switch_note.setObjectName("Hint")
        self.switch_note.setWordWrap(True)
        self.switch_note.hide()

        # Flow models (SD3, Flux): Forge's "Distilled CFG Scale" and "Shift".
        self.guidance_spin = QDoubleSpinBox()
        self.guidance_spin.setObjectName("distilled_cfg_spin")
        self.guidance_spin.setRange(0.0, 30.0)
        self.guidance_spin.setSingleStep(0.5)
        self.guidance_spin.setDecimals(1)
        self.guidance_spin.setSpecialValueText("Default (3.5)")
        self.guidance_spin.setToolTip(
            "Flux's distilled guidance (Forge's 'Distilled CFG Scale'): fed to the model's "
            "guidance embedding, one pass a step. Higher follows the prompt more literally. "
            "Schnell ignores it."
        )
        self.shift_spin = QDoubleSpinBox()
        self.shift_spin.setObjectName("shift_spin")
        self.shift_spin.setRange(0.0, 20.0)
        self.shift_spin.setSingleStep(0.1)
        self.shift_spin.setDecimals(2)
        self.shift_spin.setSpecialValueText("Model default")
        self.shift_spin.setToolTip(
            "Timestep shift s: σ' = s·σ / (1 + (s − 1)·σ) (Esser et al. 2024, eq. 23) spends "
            "more steps at high noise for s > 1. Default: SD3's 3; Flux's by resolution."
        )
        self.flow_hint = QLabel()
        self.flow_hint.setObjectName("Hint")
        self.flow_hint.setWordWrap(True)

        self.schedule_combo = QComboBox()
        self.schedule_combo.setObjectName("schedule_combo")
        self.spacing_combo = QComboBox()
        self.spacing_combo.setObjectName("spacing_combo")
        self.eta_spin = QDoubleSpinBox()
        self.eta_spin.setObjectName("eta_spin")
        self.eta_spin.setRange(0.0, 1.0)
        self.eta_spin.setSingleStep(0.05)
        self.eta_spin.setDecimals(2)
        self.eta_spin.setToolTip("η: 0 = deterministic, 1 = fully stochastic")
        self.eta_slider = QSlider(Qt.Orientation.Horizontal)
        self.eta_slider.setRange(0, 100)
        self.order_combo = QComboBox()
        self.order_combo.setObjectName("order_combo")
        self._option_rows: dict[str, list[QWidget]] = {}

        self.steps_slider = QSlider(Qt.Orientation.Horizontal)
        self.steps_slider.setObjectName("steps_slider")
        self.steps_slider.setRange(1, MAX_SLIDER_STEPS)
        self.steps_spin = QSpinBox()
        self.steps_spin.setObjectName("sampler_steps_spin")
        self.steps_spin.setRange(1, 1000)
        self.steps_spin.setMinimumWidth(64)
        self.preset_buttons: dict[int, QToolButton] = {}
        for n in STEP_PRESETS:
            b = QToolButton()
            b.setObjectName("PresetButton")
            b.setText(str(n))
            b.setCheckable(True)
            b.setCursor(Qt.CursorShape.PointingHandCursor)
            b.setToolTip(f"{n} steps")
            b.clicked.connect(lambda _c=False, n=n: setattr(self.settings, "steps", n))
            self.preset_buttons[n] = b

        self.analytic_row = FitRow("Analytic-DPM", "analytic")
        self.analytic_toggle = self.analytic_row.toggle
        self.analytic_toggle.setToolTip(
            "Optimal reverse variance (Bao et al. 2022): switches DDPM ↔ Analytic-DDPM and "
            "DDIM ↔ Analytic-DDIM. Needs a one-off fit per model."
        )
        self.calibration_row = FitRow("Calibrated", "calibration")
        self.calibrated_toggle = self.calibration_row.toggle
        self.calibrated_toggle.setToolTip(
            "Subtract the per-step mean of the predicted noise (Pang et al. 2023); works with "
            "every sampler. Needs a one-off fit per model."
        )
        self.need_label = QLabel()
        self.need_label.setObjectName("FieldError")
        self.need_label.setWordWrap(True)
        self.need_label.setToolTip(
            "Analytic-DPM needs Γ_t = E‖ε̂(x_t, t)‖² / d for each timestep (Bao et al. 2022, "
            "eq. 7), estimated once per model from noised images; calibration needs the "
            "per-step mean of ε̂."
        )
        self.need_button = QPushButton("Fit now")
        self.need_button.setObjectName("need_fit_button")
        self.compare_button = QPushButton("Compare samplers…")
        self.compare_button.setObjectName("compare_button")
        self.compare_button.setToolTip(
            "Render the current prompt and seed with several samplers and step counts, side "
            "by side, with the seconds each took"
        )
        self._toggle_tips = {
            row: row.toggle.toolTip() for row in (self.analytic_row, self.calibration_row)
        }
        self._layout()
        self._bind()

    # ----------------------------------------------------------------- construction
    def _layout(self) -> None:
        section, label = section_title, field_label
        body = QVBoxLayout()
        body.setSpacing(6)
        body.addWidget(section("Sampler"))
        body.addWidget(self.sampler_list, 1)
        body.addWidget(self.description)
        body.addWidget(self.switch_note)

        self.options_title = section("Options")
        body.addWidget(self.options_title)
        form = QGridLayout()
        form.setHorizontalSpacing(8)
        form.setVerticalSpacing(4)
        form.setColumnStretch(1, 1)
        eta_row = QHBoxLayout()
        eta_row.setSpacing(6)
        eta_row.addWidget(self.eta_slider, 1)
        eta_row.addWidget(self.eta_spin)
        eta_box = QWidget()
        eta_box.setLayout(eta_row)
        eta_row.setContentsMargins(0, 0, 0, 0)
        for r, (name, text, widget) in enumerate(
            (
                ("schedule", "Schedule", self.schedule_combo),
                ("timestep_spacing", "Spacing", self.spacing_combo),
                ("eta", "η (eta)", eta_box),
                ("solver_order", "Order", self.order_combo),
            )
        ):
            lab = label(text)
            form.addWidget(lab, r, 0)
            form.addWidget(widget, r, 1)
            self._option_rows[name] = [lab, widget]
        body.addLayout(form)

        self.flow_title = section("Flow model")
        body.addWidget(self.flow_title)
        flow_form = QGridLayout()
        flow_form.setHorizontalSpacing(8)
        flow_form.setVerticalSpacing(4)
        flow_form.setColumnStretch(1, 1)
        self.guidance_label = label("Distilled CFG")
        self.shift_label = label("Shift")
        flow_form.addWidget(self.guidance_label, 0, 0)
        flow_form.addWidget(self.guidance_spin, 0, 1)
        flow_form.addWidget(self.shift_label, 1, 0)
        flow_form.addWidget(self.shift_spin, 1, 1)
        body.addLayout(flow_form)
        body.addWidget(self.flow_hint)

        body.addWidget(section("Steps"))
        steps_row = QHBoxLayout()
        steps_row.setSpacing(8)
        steps_row.addWidget(self.steps_slider, 1)
        steps_row.addWidget(self.steps_spin)
        body.addLayout(steps_row)
        presets = QHBoxLayout()
        presets.setSpacing(4)
        for b in self.preset_buttons.values():
            presets.addWidget(b, 1)
        body.addLayout(presets)

        body.addWidget(section("Variance & calibration"))
        body.addWidget(self.analytic_row)
        body.addWidget(self.calibration_row)
        need = QHBoxLayout()
        need.setSpacing(6)
        need.addWidget(self.need_label, 1)
        need.addWidget(self.need_button, 0, Qt.AlignmentFlag.AlignTop)
        self.need_box = QWidget()
        self.need_box.setObjectName("NeedFit")
        self.need_box.setLayout(need)
        need.setContentsMargins(0, 0, 0, 0)
        body.addWidget(self.need_box)

        scroll = scrolling_body(body)
        footer = QVBoxLayout()
        footer.setContentsMargins(12, 6, 12, 12)
        footer.addWidget(self.compare_button)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        outer.addWidget(scroll, 1)
        outer.addLayout(footer)

    def _bind(self) -> None:
        s = self.settings
        self._fill_samplers()
        self.engine.samplers_changed.connect(lambda _v: self._fill_samplers())
        self.engine.models_changed.connect(lambda _v: self._refresh())
        s.model_changed.connect(lambda _v: self._refresh())
        s.sampler_changed.connect(lambda _v: self._refresh())
        # A model of the other family (flow vs ε/v), picked or loaded, or a recipe's sampler
        # that does not fit it: switch to the sampler that does, and say so.
        for sig in (
            self.engine.models_changed,
            self.engine.health_changed,
            s.model_changed,
            s.sampler_changed,
        ):
            sig.connect(lambda _v: self._fit_to_model())
        s.options_changed.connect(lambda _v: self._refresh())
        s.steps_changed.connect(lambda _v: self._refresh_steps())
        self.fits.fits_changed.connect(lambda _v: self._refresh_fits())
        self.fits.model_changed.connect(lambda _v: self._refresh_fits())
        # Only the fits' own progress: other jobs' progress events leave the panel alone.
        self.jobs.changed.connect(self._on_jobs)
        self.jobs.job_updated.connect(self._on_job_updated)

        self.sampler_list.currentItemChanged.connect(self._on_pick)
        self.schedule_combo.activated.connect(lambda _i: self._on_schedule())
        self.spacing_combo.activated.connect(
            lambda _i: self._set_option("timestep_spacing", self.spacing_combo.currentData())
        )
        self.order_combo.activated.connect(
            lambda _i: self._set_option("solver_order", self.order_combo.currentData())
        )
        self.eta_spin.valueChanged.connect(self._on_eta)
        self.guidance_spin.valueChanged.connect(lambda _v: self._on_flow())
        self.shift_spin.valueChanged.connect(lambda _v: self._on_flow())
        self.eta_slider.valueChanged.connect(
            lambda v: None if self._updating else self.eta_spin.setValue(v / 100)
        )
        self.steps_slider.valueChanged.connect(
            lambda v: None if self._updating else setattr(s, "steps", v)
        )
        self.steps_spin.valueChanged.connect(
            lambda v: None if self._updating else setattr(s, "steps", v)
        )
        self.analytic_toggle.clicked.connect(self._on_analytic)
        self.calibrated_toggle.clicked.connect(
            lambda on: s.set_option("calibrated", True if on else None)
        )
        self.analytic_row.fit_button.clicked.connect(lambda: self.fit_requested.emit("analytic"))
        self.calibration_row.fit_button.clicked.connect(
            lambda: self.fit_requested.emit("calibration")
        )
        self.need_button.clicked.connect(self._on_need_fit)
        self.compare_button.clicked.connect(self.compare_requested.emit)
        self._refresh()
        self._refresh_steps()
        self._fit_to_model()

    # ----------------------------------------------------------------- state → widgets
    def _model(self):
        """The model the next job uses: the one picked, else the engine's active one."""
        picked = self.settings.model
        if picked:
            return next((m for m in self.engine.models if m.id == picked), None)
        return self.engine.active_model

    def current_info(self) -> tuple[SamplerInfo | None, str | None]:
        return resolve(self.settings.sampler, self.engine.samplers)

    def _fill_samplers(self) -> None:
        self._updating = True
        self.sampler_list.clear()
        for info in listed(self.engine.samplers):
            item = QListWidgetItem(info.name)
            item.setData(NAME_ROLE, info.name)
            item.setData(DESC_ROLE, info.description)
            item.setToolTip(info.description)
            self.sampler_list.addItem(item)
        self._updating = False
        self._refresh()

    def _refresh(self) -> None:
        """Sampler selection and the option rows from the settings."""
        self._updating = True
        try:
            s = self.settings
            info, implied = self.current_info()
            name = info.name if info is not None else s.sampler
            for i in range(self.sampler_list.count()):
                item = self.sampler_list.item(i)
                if item.data(NAME_ROLE) == name:
                    if self.sampler_list.currentRow() != i:
                        self.sampler_list.setCurrentRow(i)
                    break
            else:
                self.sampler_list.setCurrentRow(-1)
            self.description.setText(
                info.description
                if info is not None
                else f"{s.sampler}: not offered by this engine."
            )
            any_row = False
            for opt_name, widgets in self._option_rows.items():
                opt = option(info, opt_name)
                for w in widgets:
                    w.setVisible(opt is not None)
                any_row = any_row or opt is not None
                if opt is None:
                    continue
                value = s.option(opt_name)
                if opt_name == "schedule":
                    self._fill_combo(
                        self.schedule_combo,
                        [(schedule_label(c), c) for c in opt.choices],
                        implied or value or "default",
                    )
                elif opt_name == "timestep_spacing":
                    self._fill_combo(
                        self.spacing_combo,
                        [(DEFAULT, None)] + [(str(c), c) for c in opt.choices],
                        value,
                    )
                elif opt_name == "solver_order":
                    self._fill_combo(
                        self.order_combo,
                        [(DEFAULT, None)] + [(str(c), c) for c in opt.choices],
                        value,
                    )
                elif opt_name == "eta":
                    eta = float(value if value is not None else (opt.default or 0.0))
                    self.eta_spin.setValue(eta)
                    self.eta_slider.setValue(round(eta * 100))
            self.options_title.setVisible(any_row)
            enabled, checked, _ = analytic_toggle(name)
            self.analytic_toggle.setEnabled(enabled)
            self.analytic_toggle.setChecked(checked)
            self.calibrated_toggle.setChecked(bool(s.option("calibrated")))
            self._show_flow()
        finally:
            self._updating = False
        self._refresh_fits()

    def model_architecture(self) -> str | None:
        """The architecture of the model the next job uses (None while unknown)."""
        model = self._model()
        return model.architecture if model is not None else None

    def _show_flow(self) -> None:
        """The Flow model section: shown for SD3/Flux; Distilled CFG for Flux only."""
        arch = self.model_architecture()
        flow = model_family(arch) == "flow"
        flux = arch == "flux"
        for w in (self.flow_title, self.shift_label, self.shift_spin, self.flow_hint):
            w.setVisible(flow)
        for w in (self.guidance_label, self.guidance_spin):
            w.setVisible(flux)
        guidance, shift = flow_options(self.settings.option("flow"))
        self.guidance_spin.setValue(guidance or 0.0)
        self.shift_spin.setValue(shift or 0.0)
        self.flow_hint.setText(
            "CFG scale (Prompt panel) runs only with a negative prompt on Flux: true CFG, two "
            "passes a step."
            if flux
            else "SD3's guidance is the CFG scale (Prompt panel)."
        )

    def _on_flow(self) -> None:
        if self._updating:
            return
        g, s = self.guidance_spin.value(), self.shift_spin.value()
        self.settings.set_option("flow", flow_value(g or None, s or None))

    def _fit_to_model(self) -> None:
        """Switch a sampler that cannot sample the model's family (with a visible note) and
        drop the options the family does not take."""
        if self._updating:
            return
        s = self.settings
        arch = self.model_architecture()
        family = model_family(arch)
        if family is None:
            return
        dropped = [n for n in FOREIGN_OPTIONS[family] if s.option(n) not in (None, False)]
        switch = sampler_switch(s.sampler, arch, self.engine.samplers)
        notes = []
        if switch is not None:
            notes.append(switch.note)
        if dropped:
            names = {
                "calibrated": "calibration",
                "uncertainty": "uncertainty",
                "flow": "the flow options",
            }
            notes.append(
                f"Turned off {', '.join(names[n] for n in dropped)}: not for {arch} models."
            )
        if not notes:
            return
        for name in dropped:
            s.set_option(name, None)
        if switch is not None:
            s.sampler = switch.sampler
            self._drop_foreign_options()
        self.switch_note.setText(" ".join(notes))
        self.switch_note.show()

    def _fill_combo(self, combo: QComboBox, items: list[tuple[str, object]], value: object) -> None:
        if [combo.itemData(i) for i in range(combo.count())] != [v for _t, v in items]:
            combo.clear()
            for text, data in items:
                combo.addItem(text, data)
        i = combo.findData(value)
        combo.setCurrentIndex(max(0, i))

    def _refresh_steps(self) -> None:
        self._updating = True
        n = self.settings.steps
        self.steps_spin.setValue(n)
        self.steps_slider.setValue(min(n, MAX_SLIDER_STEPS))
        for k, b in self.preset_buttons.items():
            b.setChecked(k == n)
        self._updating = False
        self._refresh_fits()

    def _fits_progress(self) -> tuple[object, ...]:
        return tuple(self.jobs.fit_progress(kind) for kind in PANEL_FITS)

    def _on_job_updated(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is not None and job.fit_kind in PANEL_FITS:
            self._on_jobs()

    def _on_jobs(self) -> None:
        if self._fits_progress() != self._fits_shown:
            self._refresh_fits()

    def _refresh_fits(self) -> None:
        s = self.settings
        info, _ = self.current_info()
        self._fits_shown = self._fits_progress()
        for row, fitting in zip(
            (self.analytic_row, self.calibration_row), self._fits_shown, strict=True
        ):
            row.show_fit(fitting, self.fits, "Fitting", ", see Queue")
        enabled, _, _ = analytic_toggle(info.name if info else s.sampler)
        if not enabled and self.fits.latest("analytic") is None:
            self.analytic_row.status.setText(
                self.analytic_row.status.text() + " · applies to DDPM and DDIM"
            )
        spacing = s.option("timestep_spacing")
        needs = self.fits.needs(
            info,
            s.steps,
            spacing if isinstance(spacing, str) else None,
            bool(s.option("calibrated")),
        )
        self._needs = needs
        busy = any(self.jobs.active_fit(n.kind) is not None for n in needs)
        self.need_label.setText(" ".join(n.message for n in needs))
        self.need_button.setVisible(not busy)
        self.need_box.setVisible(bool(needs) and bool(self.fits.model))
        model = self._model()
        architecture = model.architecture if model is not None else None
        for i in range(self.sampler_list.count()):
            item = self.sampler_list.item(i)
            sampler = next(
                (x for x in self.engine.samplers if x.name == item.data(NAME_ROLE)), None
            )
            tag = ""
            if sampler is not None and sampler.needs_fit == "analytic":
                tag = "fitted" if self.fits.latest("analytic") is not None else "needs fit"
            # With uncertainty on, the samplers BayesDiff cannot propagate through are greyed.
            dim = bool(s.option("uncertainty")) and sampler is not None and not sampler.uncertainty
            if dim:
                tag = "no uncertainty"
            tip = sampler.description if sampler is not None else ""
            if dim and sampler.uncertainty_note:
                tip += f"\n\nNo uncertainty: {sampler.uncertainty_note}"
            lacks = analytic_note(sampler, model)  # SDXL: no Analytic-DPM fit can be made
            if lacks:
                tag, dim = f"no fits ({model.architecture.upper()})", True
                tip += f"\n\n{lacks}"
            # Only the samplers of the model's family (flow vs ε/v) are listed.
            other = family_note(sampler, architecture)
            if other:
                tip += f"\n\n{other}"
            if item.isHidden() != bool(other):
                item.setHidden(bool(other))
            if item.data(TAG_ROLE) != tag or bool(item.data(DIM_ROLE)) != dim:
                item.setData(TAG_ROLE, tag)
                item.setData(DIM_ROLE, dim)
                item.setToolTip(tip)
        short, why = fitted_methods_note(model)
        if short:  # flow models, SDXL: Analytic-DPM and calibration greyed, with why
            for row in (self.analytic_row, self.calibration_row):
                row.toggle.setEnabled(False)
                row.fit_button.setEnabled(False)
                row.status.setText(short)
                row.toggle.setToolTip(why)
            self.need_box.setVisible(False)
        else:
            self.calibrated_toggle.setEnabled(True)
            for row, tip in self._toggle_tips.items():
                row.toggle.setToolTip(tip)

    # ----------------------------------------------------------------- widgets → state
    def _on_pick(self, item: QListWidgetItem | None, _prev: QListWidgetItem | None) -> None:
        if self._updating or item is None:
            return
        name = item.data(NAME_ROLE)
        info, implied = self.current_info()
        if info is not None and info.name == name:
            return
        s = self.settings
        if implied:
            s.set_option("schedule", implied)  # keep what a legacy name meant
        s.sampler = name
        self._drop_foreign_options()
        self.switch_note.hide()  # the user chose: the switch note is history

    def _drop_foreign_options(self) -> None:
        """Options the new sampler does not have go back to the default (the engine would
        refuse them), and a schedule it lacks too."""
        s = self.settings
        info, _ = self.current_info()
        for name in ("schedule", "timestep_spacing", "eta", "solver_order"):
            opt = option(info, name)
            value = s.option(name)
            if value is None:
                continue
            if opt is None or (opt.choices and value not in opt.choices):
                s.set_option(name, None)

    def _on_schedule(self) -> None:
        s = self.settings
        info, implied = self.current_info()
        value = self.schedule_combo.currentData()
        if implied and info is not None:
            s.sampler = info.name  # "DPM++ 2M Karras" + Exponential → "DPM++ 2M" + Exponential
        self._set_option("schedule", value)

    def _set_option(self, name: str, value: object) -> None:
        if self._updating:
            return
        if name == "schedule" and value == "default":
            value = None
        self.settings.set_option(name, value)

    def _on_eta(self, value: float) -> None:
        if self._updating:
            return
        self._updating = True
        self.eta_slider.setValue(round(value * 100))
        self._updating = False
        self.settings.set_option("eta", round(value, 4))

    def _on_analytic(self, _checked: bool) -> None:
        info, _ = self.current_info()
        enabled, _on, target = analytic_toggle(info.name if info else self.settings.sampler)
        if enabled:
            self.settings.sampler = target
            self._drop_foreign_options()

    def _on_need_fit(self) -> None:
        for need in getattr(self, "_needs", []):
            self.fit_requested.emit(need.kind)
