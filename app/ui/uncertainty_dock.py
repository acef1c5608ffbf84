"""The Uncertainty panel: BayesDiff on/off with its fit, its quality/cost numbers (samples S,
every k-th step, decodes M — plain labels, the symbols in tooltips), how maps look, batch
ranking (lower score = more certain), variations from an intermediate step, exporting a map."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.state.canvas import CanvasState
from app.state.engine import EngineInfo
from app.state.generation import GenerationSettings
from app.state.jobs import JobsState
from app.state.sampler import FLOW_METHODS_NOTE, FitsState, resolve
from app.state.uncertainty import (
    COLORMAPS,
    DEFAULTS,
    LAYOUTS,
    RANGE_MODES,
    SCORES,
    UncertaintyView,
    cost_text,
    is_most_certain_first,
    short_value,
)
from engine.protocol import JobState

from .form import field_label, scrolling_body, section_title
from .sampler_dock import FitRow


class UncertaintyDockWidget(QWidget):
    """Public attributes name each control for tests."""

    #: "Fit now" pressed (always 'uncertainty').
    fit_requested = Signal(str)
    #: "Make variations": (step, count).
    variations_requested = Signal(int, int)
    #: "Save map…": 'png' or 'npy'.
    export_requested = Signal(str)
    #: "Use DDIM" pressed on the sampler warning.
    sampler_requested = Signal(str)

    def __init__(
        self,
        settings: GenerationSettings,
        view: UncertaintyView,
        canvas: CanvasState,
        engine: EngineInfo,
        fits: FitsState,
        jobs: JobsState,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.settings, self.view, self.canvas = settings, view, canvas
        self.engine, self.fits, self.jobs = engine, fits, jobs
        self.setObjectName("DockBody")
        self._updating = False
        self._batch: frozenset[int] | None = None  # the batch keep_spin was set for
        self._varied: object = None  # the image the variation step was last set for
        #: The uncertainty fit's progress as the status line shows it (JobsState.fit_progress).
        self._fit_shown: tuple[str, JobState, int | None] | None = None

        self.fit_row = FitRow("Compute uncertainty", "uncertainty")
        self.enable_toggle = self.fit_row.toggle
        self.enable_toggle.setToolTip(
            "BayesDiff (Kou et al. 2024): a per-pixel map of where the model was unsure, and a "
            "score per image. Needs a one-off fit of the model's last layer."
        )
        self.sampler_warning = QLabel()
        self.sampler_warning.setObjectName("FieldError")
        self.sampler_warning.setWordWrap(True)
        self.use_ddim_button = QPushButton("Use DDIM")
        self.use_ddim_button.setObjectName("use_ddim_button")
        self.error_label = QLabel()
        self.error_label.setObjectName("FieldError")
        self.error_label.setWordWrap(True)

        self.samples_spin = self._spin(
            1,
            64,
            "S: posterior samples of the model carried "
            "through sampling, batched into one UNet call. More "
            "samples give a steadier map (5: its detail varies "
            "between draws; 32: as close as a Monte-Carlo run)",
        )
        self.skip_spin = self._spin(
            1,
            100,
            "k: run the samples through the UNet every k-th "
            "step; the steps between extrapolate their response "
            "(faster; k = 5 reads somewhat low)",
        )
        self.decodes_spin = self._spin(
            1, 64, "M: latent samples decoded (one VAE batch) for the pixel map"
        )
        self.cost_label = QLabel()
        self.cost_label.setObjectName("Hint")
        self.cost_label.setWordWrap(True)

        self.show_toggle = QCheckBox("Show the map")
        self.show_toggle.setObjectName("show_map_toggle")
        self.layout_combo = self._combo(LAYOUTS)
        self.colormap_combo = self._combo(COLORMAPS)
        self.range_combo = self._combo(RANGE_MODES)
        self.score_combo = self._combo(SCORES)
        self.score_combo.setObjectName("score_combo")
        self.score_combo.setToolTip(
            "What ranks the batch (used from the next generation). Latent: the sum of the "
            "final latent's variance, as BayesDiff's code scores images. Pixel: the mean "
            "per-pixel variance of the M decoded samples (comparable across image sizes)."
        )
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setObjectName("opacity_slider")
        self.opacity_slider.setRange(0, 100)
        self.opacity_label = QLabel()
        self.opacity_label.setObjectName("Muted")
        self.opacity_label.setMinimumWidth(36)

        self.sort_button = QPushButton("Sort by certainty")
        self.sort_button.setToolTip("Order the batch from the most certain image to the least")
        self.keep_spin = self._spin(1, 1600, "How many images to keep")
        self.keep_button = QPushButton("Keep most certain")
        self.keep_button.setToolTip(
            "Show only the N most certain images of the batch (the "
            "others stay on disk and in the History)"
        )
        self.show_all_button = QPushButton("Show all")
        self.batch_label = QLabel()
        self.batch_label.setObjectName("Hint")
        self.batch_label.setWordWrap(True)

        self.variation_step_spin = self._spin(
            0, 999, "Resample x_t at this step from N(E[x_t], Var[x_t]) and finish sampling"
        )
        self.variation_count_spin = self._spin(1, 16, "How many variations")
        self.variation_button = QPushButton("Make variations")
        self.variation_button.setObjectName("variation_button")
        self.variation_hint = QLabel()
        self.variation_hint.setObjectName("Hint")
        self.variation_hint.setWordWrap(True)

        self.export_png_button = QPushButton("Save map as PNG…")
        self.export_npy_button = QPushButton("Save map as .npy…")
        self._layout()
        self._bind()

    # ----------------------------------------------------------------- construction
    @staticmethod
    def _spin(lo: int, hi: int, tip: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(lo, hi)
        spin.setToolTip(tip)
        spin.setMinimumWidth(56)
        return spin

    @staticmethod
    def _combo(items: dict[str, str]) -> QComboBox:
        combo = QComboBox()
        for key, text in items.items():
            combo.addItem(text, key)
        return combo

    def _layout(self) -> None:
        section, label = section_title, field_label
        body = QVBoxLayout()
        body.setSpacing(6)
        body.addWidget(section("BayesDiff"))
        body.addWidget(self.fit_row)
        warn = QHBoxLayout()
        warn.setContentsMargins(0, 0, 0, 0)
        warn.addWidget(self.sampler_warning, 1)
        warn.addWidget(self.use_ddim_button, 0, Qt.AlignmentFlag.AlignTop)
        self.warning_box = QWidget()
        self.warning_box.setLayout(warn)
        body.addWidget(self.warning_box)
        body.addWidget(self.error_label)

        body.addWidget(section("Quality and cost"))
        form = QGridLayout()
        form.setHorizontalSpacing(8)
        form.setVerticalSpacing(4)
        form.setColumnStretch(1, 1)
        # plain words; the paper's symbols (S, k, M) are in each field's tooltip
        for r, (text, spin) in enumerate(
            (
                ("Samples", self.samples_spin),
                ("Every k-th step", self.skip_spin),
                ("Decodes", self.decodes_spin),
            )
        ):
            form.addWidget(label(text, spin), r, 0)
            form.addWidget(spin, r, 1)
        body.addLayout(form)
        body.addWidget(self.cost_label)

        body.addWidget(section("Display"))
        body.addWidget(self.show_toggle)
        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(4)
        grid.setColumnStretch(1, 1)
        opacity = QHBoxLayout()
        opacity.setContentsMargins(0, 0, 0, 0)
        opacity.addWidget(self.opacity_slider, 1)
        opacity.addWidget(self.opacity_label)
        for r, (text, widget) in enumerate(
            (
                ("Layout", self.layout_combo),
                ("Colours", self.colormap_combo),
                ("Range", self.range_combo),
            )
        ):
            grid.addWidget(label(text), r, 0)
            grid.addWidget(widget, r, 1)
        opacity_label = label("Opacity", self.opacity_slider)
        grid.addWidget(opacity_label, 3, 0)
        self.opacity_widgets: list[QWidget] = [
            opacity_label,
            self.opacity_slider,
            self.opacity_label,
        ]
        grid.addLayout(opacity, 3, 1)
        body.addLayout(grid)

        body.addWidget(section("Batch"))
        score = QHBoxLayout()
        score.setSpacing(6)
        score.addWidget(label("Score"))
        score.addWidget(self.score_combo, 1)
        body.addLayout(score)
        body.addWidget(self.sort_button)
        keep = QHBoxLayout()
        keep.setSpacing(6)
        keep.addWidget(self.keep_button, 1)
        keep.addWidget(self.keep_spin)
        keep.addWidget(self.show_all_button)
        body.addLayout(keep)
        body.addWidget(self.batch_label)

        body.addWidget(section("Variations from here"))
        var = QGridLayout()
        var.setHorizontalSpacing(8)
        var.addWidget(label("Step"), 0, 0)
        var.addWidget(self.variation_step_spin, 0, 1)
        var.addWidget(label("Count"), 0, 2)
        var.addWidget(self.variation_count_spin, 0, 3)
        body.addLayout(var)
        body.addWidget(self.variation_button)
        body.addWidget(self.variation_hint)

        body.addWidget(section("Export"))
        export = QHBoxLayout()
        export.setSpacing(6)
        export.addWidget(self.export_png_button)
        export.addWidget(self.export_npy_button)
        body.addLayout(export)
        body.addStretch(1)

        scroll = scrolling_body(body)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

    def _bind(self) -> None:
        # Each section refreshes on what it shows: the settings, fits and the uncertainty fit's
        # own progress; the view state; the canvas batch. Other jobs' progress (a generation
        # sends several events a second) leaves the panel alone.
        s, v = self.settings, self.view
        for signal in (
            s.options_changed,
            s.sampler_changed,
            s.errors_changed,
            self.engine.samplers_changed,
            self.fits.fits_changed,
            self.fits.model_changed,
        ):
            signal.connect(lambda _v: self._refresh_generation())
        self.jobs.changed.connect(self._on_jobs)
        self.jobs.job_updated.connect(self._on_job_updated)
        self.canvas.current_changed.connect(lambda _i: self._refresh_batch())
        self.canvas.maps_changed.connect(lambda: self._refresh_batch())
        self.canvas.reset.connect(lambda: self._refresh_batch())
        for name in ("show_map", "opacity", "colormap", "range_mode", "layout"):
            getattr(v, f"{name}_changed").connect(lambda _v: self._refresh_display())

        self.enable_toggle.clicked.connect(
            lambda on: s.set_option("uncertainty", True if on else None)
        )
        for spin, name in (
            (self.samples_spin, "uncertainty_samples"),
            (self.skip_spin, "uncertainty_skip"),
            (self.decodes_spin, "uncertainty_decodes"),
        ):
            spin.valueChanged.connect(lambda value, n=name: self._set_number(n, value))
        self.score_combo.activated.connect(
            lambda _i: self._set_score(self.score_combo.currentData())
        )
        self.fit_row.fit_button.clicked.connect(lambda: self.fit_requested.emit("uncertainty"))
        self.use_ddim_button.clicked.connect(lambda: self.sampler_requested.emit("DDIM"))

        self.show_toggle.toggled.connect(lambda on: self._set_view("show_map", on))
        self.opacity_slider.valueChanged.connect(lambda x: self._set_view("opacity", x / 100))
        self.layout_combo.activated.connect(
            lambda _i: self._set_view("layout", self.layout_combo.currentData())
        )
        self.colormap_combo.activated.connect(
            lambda _i: self._set_view("colormap", self.colormap_combo.currentData())
        )
        self.range_combo.activated.connect(
            lambda _i: self._set_view("range_mode", self.range_combo.currentData())
        )

        self.sort_button.clicked.connect(self.canvas.sort_most_certain)
        self.keep_button.clicked.connect(
            lambda: self.canvas.keep_most_certain(self.keep_spin.value())
        )
        self.show_all_button.clicked.connect(self.canvas.show_all)
        self.variation_step_spin.valueChanged.connect(lambda _v: self._refresh_batch())
        self.variation_button.clicked.connect(
            lambda: self.variations_requested.emit(
                self.variation_step_spin.value(), self.variation_count_spin.value()
            )
        )
        self.export_png_button.clicked.connect(lambda: self.export_requested.emit("png"))
        self.export_npy_button.clicked.connect(lambda: self.export_requested.emit("npy"))
        self.variation_count_spin.setValue(4)
        self._refresh()

    # ----------------------------------------------------------------- widgets → state
    def _set_number(self, name: str, value: int) -> None:
        if not self._updating:
            self.settings.set_option(name, None if value == DEFAULTS[name] else value)

    def _set_score(self, kind: str) -> None:
        if not self._updating:
            default = DEFAULTS["uncertainty_score"]
            self.settings.set_option("uncertainty_score", None if kind == default else kind)

    def _set_view(self, name: str, value: object) -> None:
        if not self._updating:
            setattr(self.view, name, value)

    # ----------------------------------------------------------------- state → widgets
    def _refresh(self) -> None:
        self._refresh_generation()
        self._refresh_display()
        self._refresh_batch()

    def _on_job_updated(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is not None and job.fit_kind == "uncertainty":
            self._on_jobs()

    def _on_jobs(self) -> None:
        if self.jobs.fit_progress("uncertainty") != self._fit_shown:
            self._refresh_generation()

    def _refresh_generation(self) -> None:
        with self._quiet():
            self._show_generation()

    def _refresh_display(self) -> None:
        with self._quiet():
            self._show_display()

    def _refresh_batch(self) -> None:
        with self._quiet():
            self._show_batch()

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """Widgets set from the state do not write back to it."""
        was, self._updating = self._updating, True
        try:
            yield
        finally:
            self._updating = was

    def _show_generation(self) -> None:
        s = self.settings
        on = bool(s.option("uncertainty"))
        self.enable_toggle.setChecked(on)
        self._fit_shown = fitting = self.jobs.fit_progress("uncertainty")
        self.fit_row.show_fit(fitting, self.fits, "Fitting the posterior")
        fitted = self.fits.latest("uncertainty") is not None
        info, _ = resolve(s.sampler, self.engine.samplers)
        bad_sampler = on and info is not None and not info.uncertainty
        flow = info is not None and info.model_family == "flow"  # SD3/Flux: greyed, with why
        self.enable_toggle.setEnabled(not flow)
        if bad_sampler or flow:
            why = info.uncertainty_note or (
                FLOW_METHODS_NOTE if flow else "it has no variance propagation"
            )
            self.sampler_warning.setText(f"{info.name} cannot carry uncertainty: {why}")
        self.warning_box.setVisible(bad_sampler or flow)
        self.use_ddim_button.setVisible(not flow)  # DDIM does not sample SD3/Flux
        if flow:
            self.fit_row.fit_button.setEnabled(False)
        need_fit = on and not fitted and fitting is None and bool(self.fits.model)
        error = s.error("uncertainty")
        if not error and need_fit:
            error = (
                "No posterior for this model yet: press Fit now (about a minute on the "
                "built-in model)."
            )
        self.error_label.setText(error)
        self.error_label.setVisible(bool(error))
        values = [
            int(s.option(name) or DEFAULTS[name])
            for name in ("uncertainty_samples", "uncertainty_skip", "uncertainty_decodes")
        ]
        for spin, value in zip(
            (self.samples_spin, self.skip_spin, self.decodes_spin), values, strict=True
        ):
            spin.setValue(value)
            spin.setEnabled(on)
        kind = s.option("uncertainty_score") or DEFAULTS["uncertainty_score"]
        self.score_combo.setCurrentIndex(max(0, self.score_combo.findData(kind)))
        self.score_combo.setEnabled(on)
        self.cost_label.setText(
            cost_text(*values) if on else "Off: images are generated without uncertainty."
        )

    def _show_display(self) -> None:
        v = self.view
        self.show_toggle.setChecked(bool(v.show_map))
        self.opacity_slider.setValue(round(v.opacity * 100))
        self.opacity_label.setText(f"{v.opacity * 100:.0f}%")
        for combo, value in (
            (self.layout_combo, v.layout),
            (self.colormap_combo, v.colormap),
            (self.range_combo, v.range_mode),
        ):
            combo.setCurrentIndex(max(0, combo.findData(value)))
        # Side by side draws the map opaque beside the image: opacity does not apply there.
        overlay = v.layout == "overlay"
        for w in self.opacity_widgets:
            w.setEnabled(overlay)
        self.opacity_slider.setToolTip(
            "How strongly the map covers the image"
            if overlay
            else "Opacity applies to the overlay only: side by side shows "
            "the map opaque, beside the image"
        )

    def _show_batch(self) -> None:
        images = self.canvas.images
        scored = [im for im in images if im.score is not None]
        all_in = bool(images) and all(im.ready for im in images)
        can_rank = all_in and len(scored) > 1
        self.sort_button.setEnabled(can_rank)
        self.keep_button.setEnabled(can_rank)
        # A new batch: offer to keep the better half. The batch is known by its images (the
        # shown and the set-aside ones), not by how many are shown: "Keep most certain" and
        # "Show all" change that count, and used to reset the number the artist had chosen.
        batch = frozenset(id(im) for im in [*images, *self.canvas.hidden])
        if batch != self._batch:
            self._batch = batch
            total = len(batch)
            self.keep_spin.setMaximum(max(1, total))
            self.keep_spin.setValue(max(1, (total + 1) // 2))
        self.show_all_button.setVisible(bool(self.canvas.hidden))
        if self.canvas.hidden:
            self.batch_label.setText(
                f"Showing the {len(images)} most certain; {len(self.canvas.hidden)} set aside."
            )
        elif is_most_certain_first([im.score for im in images]):
            self.batch_label.setText(
                f"Most certain first: uncertainty {short_value(images[0].score)} (left) to "
                f"{short_value(images[-1].score)} (right), under each thumbnail; lower = more "
                "certain."
            )
        elif scored:
            self.batch_label.setText(
                f"{len(scored)} of {len(images)} images have a map (their "
                "uncertainty under each thumbnail: lower = more certain). "
                "Sort to put the most certain first."
            )
        else:
            self.batch_label.setText("Generate a batch with uncertainty on to rank it.")
        current = self.canvas.current_image
        has_map = current is not None and current.uncertainty is not None
        self.export_png_button.setEnabled(has_map)
        self.export_npy_button.setEnabled(has_map)
        steps = current.params.steps if current is not None and current.params else 0
        usable = has_map and current.params is not None and current.seed is not None
        if current is not self._varied:  # a new image: start halfway through its steps
            self._varied = current
            self.variation_step_spin.setMaximum(max(0, steps - 1))
            self.variation_step_spin.setValue(steps // 2)
        self.variation_button.setEnabled(usable)
        self.variation_hint.setText(
            f"Re-runs this image's recipe (seed {current.seed}) to step "
            f"{self.variation_step_spin.value()} of {steps}, then draws each variation's "
            "x_t from the propagated mean and variance."
            if usable
            else "Open an image made with uncertainty on to vary it from an intermediate step."
        )
