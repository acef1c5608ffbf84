"""The main window: canvas in the middle, Prompt / Queue / History docks, model toolbar."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QMainWindow,
    QSizePolicy,
    QToolBar,
    QWidget,
)

from app.controller import AppController
from app.recipe import IMAGE_SUFFIXES
from app.sample_clip import sample_clip
from app.state.sampler import for_model

from .canvas import CanvasPanel
from .central_views import CentralViews
from .compare_dialog import CompareDialog
from .desktop import DesktopActions
from .generate_bar import GenerateBar
from .history_dock import HistoryDockWidget
from .model_bar import ModelBar
from .prompt_dock import GENERATE_SHORTCUTS, PromptDockWidget
from .queue_dock import QueueDockWidget
from .robustness_dock import RobustnessDockWidget
from .sampler_dock import SamplerDockWidget
from .settings_dialog import SettingsDialog
from .status_bar import StatusBar
from .toast import Toast
from .transient import delete_when_finished
from .uncertainty_dock import UncertaintyDockWidget
from .video_dock import VideoDockWidget
from .wheel_guard import install_wheel_guard

#: Default widths of the left (Prompt, Sampler, Video, Uncertainty) and right (Queue, History)
#: dock columns: wide enough that no panel clips a label at 1280×800 (tests/app/test_layout.py).
DOCK_WIDTH, QUEUE_WIDTH = 380, 300


class MainWindow(QMainWindow):
    """Thin: builds widgets over the controller's state and forwards intents to it.

    For tests: ``prompt_edit``, ``generate_button``, ``canvas`` (a CanvasPanel with
    ``wait_for_image()`` and the ``image_shown`` signal), ``queue_view``, ``history_view``,
    ``model_combo`` are attributes, and carry the same objectName.
    """

    #: The window was closed by the user (the app then shuts the engine down and exits).
    closed = Signal()

    def __init__(self, controller: AppController, parent: QWidget | None = None):
        super().__init__(parent)
        # Combo and spin boxes take the wheel only when focused (wheel_guard.py).
        install_wheel_guard(QApplication.instance())
        self.controller = controller
        self.setObjectName("MainWindow")
        self.setWindowTitle("Sfumato")
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        c = controller

        self.canvas = CanvasPanel(c.canvas, c.uncertainty_view, jobs=c.jobs)
        self.toast = Toast(self.canvas)

        self.prompt_panel = PromptDockWidget(
            c.generation, c.engine, c.jobs, prompt_tools=c.prompt_tools
        )
        self.prompt_panel.prompt_tools.loras_wanted.connect(c.prompt_tools_jobs.refresh_loras)
        self.queue_panel = QueueDockWidget(c.jobs)
        self.history_panel = HistoryDockWidget(c.history)
        self.sampler_panel = SamplerDockWidget(c.generation, c.engine, c.fits, c.jobs)
        self.prompt_dock = self._dock(
            "Prompt", self.prompt_panel, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.sampler_dock = self._dock(
            "Sampler", self.sampler_panel, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.uncertainty_panel = UncertaintyDockWidget(
            c.generation, c.uncertainty_view, c.canvas, c.engine, c.fits, c.jobs
        )
        self.uncertainty_dock = self._dock(
            "Uncertainty", self.uncertainty_panel, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.robustness_panel = RobustnessDockWidget(c.robustness, c.generation)
        self.robustness_dock = self._dock(
            "Robustness", self.robustness_panel, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.video_panel = VideoDockWidget(c.video)
        self.video_dock = self._dock(
            "Video", self.video_panel, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        # The central area: the image canvas, or the video stage (clip, source | result
        # players) whose settings are in the Video dock (central_views.py).
        self.central = CentralViews(self.canvas, self.video_panel.player)
        self.setCentralWidget(self.central)
        self.tabifyDockWidget(self.prompt_dock, self.sampler_dock)
        self.tabifyDockWidget(self.sampler_dock, self.video_dock)
        self.tabifyDockWidget(self.video_dock, self.uncertainty_dock)
        self.tabifyDockWidget(self.uncertainty_dock, self.robustness_dock)
        self.prompt_dock.raise_()
        self.prompt_panel.open_sampler_panel.connect(self._show_sampler_panel)
        self.queue_dock = self._dock(
            "Queue", self.queue_panel, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.history_dock = self._dock(
            "History", self.history_panel, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.splitDockWidget(self.queue_dock, self.history_dock, Qt.Orientation.Vertical)
        self.resizeDocks(
            [self.prompt_dock, self.queue_dock],
            [DOCK_WIDTH, QUEUE_WIDTH],
            Qt.Orientation.Horizontal,
        )
        self.resizeDocks([self.queue_dock, self.history_dock], [400, 420], Qt.Orientation.Vertical)

        self.model_bar = ModelBar(c.engine)
        self.status = StatusBar(c.engine, c.jobs)
        self.setStatusBar(self.status)
        self._build_toolbar()
        self._build_menus()

        # Handy names for tests and scripts.
        self.prompt_edit = self.prompt_panel.prompt_edit
        self.generate_button = self.prompt_panel.generate_button
        self.queue_view = self.queue_panel.queue_view
        self.history_view = self.history_panel.view
        self.model_combo = self.model_bar.combo
        self.prompt_edit.setObjectName("prompt_edit")
        self.generate_button.setObjectName("generate_button")
        self.generate_button.setProperty("class", "GenerateButton")

        self._wire()
        # Help menu, recent files, Esc / Ctrl+S / F11, dropped videos (see desktop.py).
        self.desktop = DesktopActions(self, c, self.file_menu, self.view_menu)
        geometry, state = c.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1440, 900)
        if state is not None:
            self.restoreState(state)

    def sizeHint(self) -> QSize:
        return QSize(1440, 900)

    # ----------------------------------------------------------------- construction
    def _show_sampler_panel(self) -> None:
        self.sampler_dock.show()
        self.sampler_dock.raise_()
        self.sampler_panel.setFocus()

    def _dock(self, title: str, body: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"{title}Dock")
        dock.setWidget(body)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(area, dock)
        return dock

    def _build_toolbar(self) -> None:
        bar = QToolBar("Main", self)
        bar.setObjectName("MainToolbar")
        bar.setMovable(False)
        bar.setFloatable(False)
        bar.addWidget(self.model_bar)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        bar.addWidget(spacer)
        # Generate, its hint and Cancel: in view whichever panel is open.
        self.generate_bar = GenerateBar(
            self.prompt_panel.generate_button, self.prompt_panel.queue_hint, self.controller.jobs
        )
        bar.addWidget(self.generate_bar)
        bar.addSeparator()
        self.open_action = QAction("Open image…", self)
        self.open_action.setToolTip("Read the settings stored in a PNG (Sfumato or A1111)")
        self.open_action.setShortcut(QKeySequence.StandardKey.Open)
        self.open_action.triggered.connect(self._open_image)
        self.settings_action = QAction("Settings", self)
        self.settings_action.setShortcut(QKeySequence("Ctrl+,"))
        self.settings_action.triggered.connect(self.open_settings)
        bar.addAction(self.open_action)
        bar.addAction(self.settings_action)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)

    def _build_menus(self) -> None:
        c = self.controller
        file_menu = self.file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.open_action)
        file_menu.addAction("Open outputs folder", self._open_outputs)
        file_menu.addSeparator()
        quit_action = file_menu.addAction("Quit", self.close)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        engine_menu = self.menuBar().addMenu("&Engine")
        engine_menu.addAction("Restart engine", c.session.restart_engine)
        engine_menu.addAction("Show engine logs", lambda: self.desktop.open_log_folder())
        engine_menu.addAction("Unload model", c.session.unload_model)
        engine_menu.addSeparator()
        engine_menu.addAction(self.settings_action)
        view = self.view_menu = self.menuBar().addMenu("&View")
        view.addAction("Fit", QKeySequence("F"), self.canvas.view.fit)
        view.addAction("Actual pixels (1:1)", QKeySequence("1"), self.canvas.view.actual_size)
        view.addSeparator()
        for dock in (
            self.prompt_dock,
            self.sampler_dock,
            self.video_dock,
            self.uncertainty_dock,
            self.robustness_dock,
            self.queue_dock,
            self.history_dock,
        ):
            view.addAction(dock.toggleViewAction())

    def _wire(self) -> None:
        c = self.controller
        self.generate_button.clicked.connect(c.generate_jobs.generate)
        self.generate_bar.cancel_button.clicked.connect(self.desktop_cancel)
        self._shortcuts = []
        for seq in GENERATE_SHORTCUTS:
            sc = QShortcut(seq, self)
            sc.setContext(Qt.ShortcutContext.ApplicationShortcut)  # floating docks too
            sc.activated.connect(c.generate_jobs.generate)
            self._shortcuts.append(sc)
        self.prompt_panel.reuse_button.clicked.connect(self._reuse_seed)
        self.queue_panel.cancel_requested.connect(c.queue.cancel)
        self.queue_panel.move_requested.connect(c.queue.move)
        self.queue_panel.open_requested.connect(c.results.open_job)
        self.history_panel.open_requested.connect(c.results.open_history)
        self.history_panel.use_settings_requested.connect(
            lambda e: c.generate_jobs.use_settings(e.params, e.path.name)
        )
        self.sampler_panel.fit_requested.connect(c.fit_jobs.fit_now)
        self.sampler_panel.compare_requested.connect(self.open_compare)
        self.uncertainty_panel.fit_requested.connect(c.fit_jobs.fit_now)
        self.uncertainty_panel.variations_requested.connect(c.generate_jobs.make_variations)
        self.uncertainty_panel.sampler_requested.connect(
            lambda name: setattr(c.generation, "sampler", name)
        )
        self.uncertainty_panel.export_requested.connect(self.export_map)
        self.video_panel.open_requested.connect(self.open_video)
        self.video_panel.sample_requested.connect(self.open_sample_clip)
        self.video_dock.visibilityChanged.connect(
            lambda shown: shown and not self.video_dock.isFloating() and self.central.show_video()
        )
        for dock in (
            self.prompt_dock,
            self.sampler_dock,
            self.uncertainty_dock,
            self.robustness_dock,
        ):
            # a panel tabbed with the Video panel raised instead of it: back to the image
            dock.visibilityChanged.connect(
                lambda shown, d=dock: (
                    shown
                    and self.video_dock in self.tabifiedDockWidgets(d)
                    and self.central.show_image()
                )
            )
        c.canvas.reset.connect(self.central.show_image)
        c.video.result_frames_changed.connect(lambda f: f is not None and self.central.show_video())
        self.robustness_panel.run_requested.connect(c.robustness_jobs.run)
        self.robustness_panel.cancel_requested.connect(c.robustness_jobs.cancel)
        self.robustness_panel.wording_requested.connect(c.robustness_jobs.use_wording)
        self.video_panel.preview_requested.connect(c.video_jobs.refresh_preview)
        self.video_panel.edit_requested.connect(c.video_jobs.edit)
        self.video_panel.cancel_requested.connect(c.video_jobs.cancel)
        self.video_panel.export_requested.connect(c.video_jobs.export)
        self.canvas.cell_clicked.connect(c.compare_jobs.open_grid_cell)
        self.canvas.use_settings_requested.connect(c.generate_jobs.use_settings)
        self.canvas.save_requested.connect(lambda: self.desktop.save_image_as())
        self.canvas.retry_requested.connect(c.generate_jobs.retry)
        self.model_bar.load_requested.connect(c.session.load_model)
        self.model_bar.unload_requested.connect(c.session.unload_model)
        c.results.video_opened.connect(self.open_video)
        c.notice.connect(self.status.show_notice)
        c.notice.connect(self._toast_if_needed)

    # ----------------------------------------------------------------- actions
    def desktop_cancel(self) -> None:
        self.desktop.cancel_running()

    def _toast_if_needed(self, level: str, text: str) -> None:
        if level in ("error", "warning") or text.startswith("Settings restored"):
            self.toast.show_message(level, text)

    def _reuse_seed(self) -> None:
        image = self.controller.canvas.current_image
        if image is not None and image.seed is not None and image.seed >= 0:
            self.controller.generation.reuse_seed(image.seed)
        else:
            self.status.show_notice("info", "No finished image on the canvas to take a seed from.")

    def _open_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open an image to reuse its settings",
            str(self.controller.output_dir),
            "Images (*.png *.jpg *.jpeg *.webp);;All files (*)",
        )
        if path:
            self.desktop.open_file(path)

    def export_map(self, kind: str, target: str | None = None) -> Path | None:
        """Save the shown image's uncertainty map: 'png' (coloured as on screen, at the image's
        size) or 'npy' (the float values). ``target`` skips the file dialog (tests, scripts)."""
        image = self.controller.canvas.current_image
        umap = image.uncertainty if image is not None else None
        if umap is None:
            self.status.show_notice("info", "The image shown has no uncertainty map.")
            return None
        stem = image.path.stem if image.path is not None else "uncertainty"
        if target is None:
            pattern = "PNG image (*.png)" if kind == "png" else "NumPy array (*.npy)"
            start = image.path.parent if image.path else self.controller.output_dir
            target, _ = QFileDialog.getSaveFileName(
                self, "Save the uncertainty map", str(start / f"{stem}-uncertainty.{kind}"), pattern
            )
            if not target:
                return None
        path = Path(target)
        try:
            if kind == "png":
                from app.state.uncertainty import display_range

                from .heatmap import heatmap_pixmap

                view = self.controller.uncertainty_view
                lo, hi = display_range(
                    [im.uncertainty for im in self.controller.canvas.images], umap, view.range_mode
                )
                if (
                    not heatmap_pixmap(umap, lo, hi, view.colormap)
                    .scaled(
                        image.width or umap.values.shape[1],
                        image.height or umap.values.shape[0],
                        Qt.AspectRatioMode.IgnoreAspectRatio,
                        Qt.TransformationMode.FastTransformation,
                    )
                    .save(str(path), "PNG")
                ):
                    raise OSError("Qt could not write the PNG")
            else:
                import numpy as np

                np.save(path, umap.values)
        except OSError as exc:
            self.status.show_notice("error", f"Could not save {path.name}: {exc}")
            return None
        self.status.show_notice("info", f"Uncertainty map saved as {path.name}.")
        return path

    def open_video(self, path: Path | str) -> None:
        """A dropped or opened video: show the Video panel and send the clip to the engine
        (called by desktop.py for drops, recent files and the command line)."""
        self.video_dock.show()
        self.video_dock.raise_()
        self.central.show_video()
        self.controller.video_jobs.open_video(path)

    def open_sample_clip(self) -> None:
        """ "Try the sample clip": the README's clip, with prompts for a first edit (kept where
        the artist already wrote some)."""
        clip = sample_clip()
        if clip is None:
            self.status.show_notice(
                "error",
                "The sample clip is missing from this "
                "installation (resources/video/sample-clip.mp4).",
            )
            return
        v = self.controller.video
        if not v.source_prompt.strip():
            v.source_prompt = clip.source_prompt
        if not v.target_prompt.strip():
            v.target_prompt = clip.target_prompt
        if not v.edit_phrase.strip():  # the phrase means something per edit type: both
            v.edit_type = clip.edit_type
            v.edit_phrase = clip.edit_phrase
        self.open_video(clip.path)

    def _open_outputs(self) -> None:
        folder = self.controller.output_dir
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def open_compare(self) -> CompareDialog | None:
        """The Compare… dialog; Run queues one sampler_grid job for the current recipe."""
        c = self.controller
        try:
            current = c.generation.to_params()
        except ValueError:
            c.generation.validated_params()
            self.status.show_notice("error", "Fix the highlighted fields first.")
            current = None
        if current is None:
            return None
        missing = {
            s.name
            for s in c.engine.samplers
            if s.needs_fit == "analytic" and c.fits.latest("analytic") is None
        }
        # only the samplers of the model's family (flow vs ε/v): the others' cells would fail
        samplers = for_model(c.engine.samplers, self.sampler_panel.model_architecture())
        dialog = CompareDialog(samplers, current, missing, self)
        dialog.setModal(True)

        def done(result: int) -> None:
            if result:
                choice, problem = dialog.choice()
                if not problem:
                    c.compare_jobs.compare(choice)

        dialog.finished.connect(done)
        delete_when_finished(dialog)  # one per grid asked for: not kept for the session
        dialog.open()
        self.compare_dialog = dialog
        return dialog

    def open_settings(self) -> SettingsDialog:
        c = self.controller
        dialog = SettingsDialog(c.settings, c.paths.outputs, c.session.test_connection, self)
        dialog.setModal(True)

        def done(result: int) -> None:
            theme = c.settings.theme
            if result and dialog.apply():
                c.session.restart_engine()
            if c.settings.theme != theme:
                self.desktop.apply_theme()

        dialog.finished.connect(done)
        delete_when_finished(dialog)
        dialog.open()
        return dialog

    # ----------------------------------------------------------------- drag & drop
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = [u for u in event.mimeData().urls()]
        files = [Path(u.toLocalFile()) for u in urls if u.isLocalFile()]
        event.acceptProposedAction()
        if not files:
            self.controller.notice.emit(
                "error",
                "Only files from this computer can be dropped (a PNG made by Sfumato or A1111).",
            )
            return
        images = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
        self.desktop.open_file(images[0] if images else files[0])

    # ----------------------------------------------------------------- close
    def closeEvent(self, event: QCloseEvent) -> None:
        self.controller.settings.save_window_state(self.saveGeometry(), self.saveState())
        self.controller.save_last_params()
        self.history_panel.thumbs.wait()
        super().closeEvent(event)
        self.closed.emit()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.toast.isVisible():
            self.toast.move((self.canvas.width() - self.toast.width()) // 2, 56)
