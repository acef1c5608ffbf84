"""The Video panel: drop a clip, say what it should become, watch the edit beside the source.

Thin over :class:`app.state.video.VideoState`; intents go out as signals (the window connects
them to :class:`app.controllers.video.VideoController`). The player shows frames the engine
decoded (the control preview returns them with the maps), so the packaged app needs no video
decoder or QtMultimedia: a shared slider and a play timer show source frame i beside result
frame i. See docs/video.md.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QPainter, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.state.video import (
    CONTROL_TYPES,
    EDIT_PHRASE_HELP,
    EDIT_PHRASE_HINTS,
    EDIT_TYPE_TIPS,
    EDIT_TYPES,
    FITS,
    INTERPOLATORS,
    METHODS,
    VideoState,
    fps_text,
    strip_positions,
)
from engine.video_protocol import VIDEO_SUFFIXES

from .binding import bind
from .form import field_label, scrolling_body, section_title
from .theme import repolish


class FrameView(QLabel):
    """One frame, scaled to fit with its aspect ratio, on a dark backing; a caption when empty."""

    def __init__(self, empty_text: str, parent: QWidget | None = None):
        super().__init__(parent)
        self._pixmap: QPixmap | None = None
        self._data: bytes | None = None
        self.empty_text = empty_text
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(96, 96)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setObjectName("FrameView")  # styled in style.qss (both themes)
        self.setText(empty_text)

    def sizeHint(self) -> QSize:
        return QSize(160, 160)

    def set_png(self, data: bytes | None) -> None:
        if data is self._data and (data or self._pixmap is None):
            return
        self._data = data
        if not data:
            self._pixmap = None
            self.clear()
            self.setText(self.empty_text)
            return
        pix = QPixmap()
        pix.loadFromData(data, "PNG")
        self._pixmap = pix
        self.setText("")
        self.update()

    def has_frame(self) -> bool:
        return self._pixmap is not None

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self._pixmap is None or self._pixmap.isNull():
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        area = self.contentsRect().adjusted(2, 2, -2, -2)
        scaled = self._pixmap.size().scaled(area.size(), Qt.AspectRatioMode.KeepAspectRatio)
        x = area.x() + (area.width() - scaled.width()) // 2
        y = area.y() + (area.height() - scaled.height()) // 2
        painter.drawPixmap(x, y, scaled.width(), scaled.height(), self._pixmap)


class DropZone(QFrame):
    """ "Drop a video here" with Open video…; shows the clip's facts once the engine took it."""

    file_dropped = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("VideoDropZone")
        self.setAcceptDrops(True)  # styled in style.qss, so the light theme converts it too
        self.title = QLabel("Drop a video here")
        self.title.setObjectName("DropTitle")
        self.title.setWordWrap(True)
        self.detail = QLabel(
            f"{', '.join(s.lstrip('.') for s in VIDEO_SUFFIXES)} — any length; "
            "you pick the frames below"
        )
        self.detail.setObjectName("Hint")
        self.detail.setWordWrap(True)
        self.open_button = QPushButton("Open video…")
        self.open_button.setObjectName("open_video_button")
        self.sample_button = QPushButton("Try the sample clip")
        self.sample_button.setObjectName("sample_clip_button")
        self.sample_button.setToolTip(
            "Open the README's sample: a t-rex gliding over 24 frames "
            "(64×64, 8 fps), with prompts for a first edit filled in"
        )
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 10, 12, 10)
        text = QVBoxLayout()
        text.setSpacing(2)
        text.addWidget(self.title)
        text.addWidget(self.detail)
        row.addLayout(text, 1)
        row.addWidget(self.sample_button, 0, Qt.AlignmentFlag.AlignVCenter)
        row.addWidget(self.open_button, 0, Qt.AlignmentFlag.AlignVCenter)

    def _hover(self, on: bool) -> None:
        self.setProperty("hover", "true" if on else "false")
        repolish(self)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
            self._hover(True)

    def dragLeaveEvent(self, event) -> None:
        self._hover(False)

    def dropEvent(self, event) -> None:
        self._hover(False)
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        event.acceptProposedAction()
        if urls:
            self.file_dropped.emit(urls[0].toLocalFile())


class VideoDockWidget(QWidget):
    """Public attributes name each control for tests."""

    open_requested = Signal(str)
    #: "Try the sample clip": the window opens it like a dropped video.
    sample_requested = Signal()
    preview_requested = Signal()
    edit_requested = Signal()
    cancel_requested = Signal()
    #: Export… with the chosen path.
    export_requested = Signal(str)

    def __init__(self, state: VideoState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.setObjectName("DockBody")
        self.show_problems = False

        self.drop_zone = DropZone()
        self.open_button = self.drop_zone.open_button
        #: The clip in one line, at the top of the dock (the clip itself shows in the centre).
        self.clip_label = QLabel()
        self.clip_label.setObjectName("Muted")
        self.clip_label.setWordWrap(True)
        self.upload_bar = QProgressBar()
        self.upload_bar.setRange(0, 1000)
        self.upload_bar.setTextVisible(False)
        self.upload_bar.setMaximumHeight(6)
        self.upload_bar.hide()

        # player
        self.source_view = FrameView("Source")
        self.result_view = FrameView("The edit appears here")
        self.play_button = QPushButton("▶")
        self.play_button.setObjectName("play_button")
        self.play_button.setCheckable(True)
        self.play_button.setFixedWidth(36)
        self.play_button.setToolTip("Play source and result together (Space)")
        self.frame_slider = QSlider(Qt.Orientation.Horizontal)
        self.frame_slider.setObjectName("frame_slider")
        self.frame_slider.setRange(0, 0)
        self.frame_label = QLabel()
        self.frame_label.setObjectName("Muted")
        self.frame_label.setMinimumWidth(88)
        self.timer = QTimer(self)

        # frames
        self.start_spin = _spin(0, 10**7, "First source frame to edit (0-based)")
        self.end_spin = _spin(0, 10**7, "Stop before this frame; 0 = to the end")
        self.end_spin.setSpecialValueText("end")
        self.stride_spin = _spin(1, 100, "Use every n-th frame (the result plays at fps ÷ n)")
        self.start_here = QPushButton("Start here")
        self.start_here.setToolTip("Start the selection at the frame shown")
        self.end_here = QPushButton("End here")
        self.end_here.setToolTip("End the selection after the frame shown")
        self.selection_label = QLabel()
        self.selection_label.setObjectName("Hint")

        # prompts
        self.source_prompt_edit = QLineEdit()
        self.source_prompt_edit.setObjectName("video_source_prompt")
        self.source_prompt_edit.setPlaceholderText("What the video shows now")
        self.target_prompt_edit = QPlainTextEdit()
        self.target_prompt_edit.setObjectName("video_target_prompt")
        self.target_prompt_edit.setPlaceholderText("What it should become")
        self.target_prompt_edit.setFixedHeight(52)
        self.edit_phrase_edit = QLineEdit()
        self.edit_phrase_edit.setToolTip(EDIT_PHRASE_HELP)
        self.edit_type_combo = _combo(EDIT_TYPES)
        for i, key in enumerate(EDIT_TYPES):
            self.edit_type_combo.setItemData(i, EDIT_TYPE_TIPS[key], Qt.ItemDataRole.ToolTipRole)
        self.edit_type_combo.setToolTip(
            "What the edit changes and what it keeps: LOVECon "
            "blends the source's latents back in where the edit "
            "should not reach"
        )
        self.method_combo = _combo({k: v[0] for k, v in METHODS.items()})
        self.method_combo.setObjectName("method_combo")
        self.method_hint = QLabel()
        self.method_hint.setObjectName("Hint")
        self.method_hint.setWordWrap(True)

        # control
        self.control_combo = _combo(CONTROL_TYPES)
        self.control_combo.setToolTip(
            "What the ControlNet follows in each frame: canny edges are "
            "built in; soft edges, depth and pose need their annotator "
            "weights on disk"
        )
        self.low_spin = _spin(0, 1000, "Canny: weaker edges than this are dropped")
        self.high_spin = _spin(0, 1000, "Canny: edges stronger than this always count")
        self.scale_spin = QDoubleSpinBox()
        self.scale_spin.setRange(0.0, 4.0)
        self.scale_spin.setSingleStep(0.1)
        self.scale_spin.setToolTip("How strongly the ControlNet holds the edit to the maps")
        self.controlnet_edit = QLineEdit()
        self.controlnet_edit.setPlaceholderText("the model's own")
        self.controlnet_edit.setToolTip(
            "A ControlNet folder or id; empty = <model>-<type> beside the model"
        )
        self.annotator_edit = QLineEdit()
        self.annotator_edit.setPlaceholderText("annotator weights folder (hed/depth/pose)")
        self.annotator_edit.setToolTip(
            "A folder laid out like lllyasviel/Annotators: ControlNetHED.pth (HED), "
            "dpt_hybrid-midas-501f0c75.pt (depth), body_pose_model.pth (pose)"
        )
        self.annotator_browse = QPushButton("Browse…")
        self.annotator_browse.setToolTip("Choose the folder with the annotator weights")
        self.strip = QHBoxLayout()
        self.strip.setSpacing(3)
        self.strip_views: list[FrameView] = []
        self.strip_label = QLabel("Control maps appear here once a clip is open.")
        self.strip_label.setObjectName("Hint")
        self.strip_label.setWordWrap(True)

        # output & sampling
        self.width_spin = _spin(8, 2048, "Output width (multiple of 8)", step=8)
        self.height_spin = _spin(8, 2048, "Output height (multiple of 8)", step=8)
        self.fit_combo = _combo(FITS)
        self.steps_spin = _spin(1, 1000, "DDIM steps, for inversion and for sampling")
        self.cfg_spin = QDoubleSpinBox()
        self.cfg_spin.setRange(0.0, 100.0)
        self.cfg_spin.setSingleStep(0.5)
        self.seed_spin = _spin(0, 2**31 - 1, "Seed (ControlVideo's tuning noise)")
        self.window_spin = _spin(1, 64, "LOVECon: new frames per window")
        self.smoothing_check = QCheckBox("Smooth (frame interpolation)")
        self.interp_combo = _combo(INTERPOLATORS)
        self.interp_combo.setObjectName("interpolator_combo")
        self.interp_combo.setToolTip(
            "How smoothing makes in-between frames: optical flow (built "
            "in), or RIFE, a learned interpolation network whose weights "
            "you have on disk"
        )
        self.rife_edit = QLineEdit()
        self.rife_edit.setObjectName("rife_weights_edit")
        self.rife_edit.setPlaceholderText("flownet.pkl of RIFE 4.6, or its folder")
        self.rife_edit.setToolTip(
            "Practical-RIFE 4.6's flownet.pkl (its train_log folder), a path "
            "on the engine's machine; not bundled"
        )
        self.rife_browse = QPushButton("Browse…")
        self.rife_browse.setToolTip("Choose RIFE's weights file")
        self.tuning_spin = _spin(
            0, 5000, "ControlVideo one-shot tuning steps (paper: 80 for canny)"
        )
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(6)
        self.lr_spin.setRange(0.000001, 1.0)
        self.lr_spin.setSingleStep(0.00001)
        self.lr_spin.setToolTip("ControlVideo tuning learning rate")
        for spin in (self.scale_spin, self.cfg_spin, self.lr_spin):
            spin.setMinimumWidth(64)  # not the width of the largest value: the dock is narrow

        # run
        self.edit_button = QPushButton("Edit video")
        self.edit_button.setObjectName("GenerateButton")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("video_cancel_button")
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setMaximumHeight(8)
        self.stage_label = QLabel()
        self.stage_label.setObjectName("Muted")
        self.stage_label.setWordWrap(True)
        self.message_label = QLabel()
        self.message_label.setObjectName("FieldError")
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result_label = QLabel()
        self.result_label.setObjectName("Hint")
        self.result_label.setWordWrap(True)
        #: Seconds per stage, under the result and Export, the panel's whole width.
        self.result_times_label = QLabel()
        self.result_times_label.setObjectName("Hint")
        self.result_times_label.setWordWrap(True)
        self.export_button = QPushButton("Export MP4…")
        self.export_button.setObjectName("video_export_button")

        self._field_widgets: dict[str, QWidget] = {
            "start": self.start_spin,
            "end": self.end_spin,
            "stride": self.stride_spin,
            "target_prompt": self.target_prompt_edit,
            "edit_phrase": self.edit_phrase_edit,
            "width": self.width_spin,
            "height": self.height_spin,
            "low_threshold": self.low_spin,
            "annotator": self.annotator_edit,
            "rife_weights": self.rife_edit,
        }
        self._layout()
        self._bind()
        self._refresh_all()

    # ----------------------------------------------------------------- construction
    def _layout(self) -> None:
        section, label = section_title, field_label

        # The stage: the clip and the player (source | result, one slider). The window shows
        # it in its central area (the "Video" view), where a clip has room; the dock keeps
        # what to edit and how.
        self.player = QWidget()
        self.player.setObjectName("VideoStage")
        # The stage must not set the window's minimum width (its drop zone row wants ~330 px):
        # a small window squeezes it like the canvas; at 1280 px and up it has room.
        self.player.setMinimumWidth(64)
        top = QVBoxLayout(self.player)
        top.setContentsMargins(16, 12, 16, 12)
        top.setSpacing(8)
        top.addWidget(self.drop_zone)
        top.addWidget(self.upload_bar)
        views = QGridLayout()
        views.setHorizontalSpacing(6)
        views.setVerticalSpacing(2)
        views.addWidget(label("Source"), 0, 0)
        views.addWidget(label("Result"), 0, 1)
        views.addWidget(self.source_view, 1, 0)
        views.addWidget(self.result_view, 1, 1)
        views.setColumnStretch(0, 1)
        views.setColumnStretch(1, 1)
        views.setRowStretch(1, 1)
        top.addLayout(views, 1)
        transport = QHBoxLayout()
        transport.setSpacing(6)
        transport.addWidget(self.play_button)
        transport.addWidget(self.frame_slider, 1)
        transport.addWidget(self.frame_label)
        top.addLayout(transport)

        # Middle, scrolling: what to edit and how.
        body = QVBoxLayout()
        body.setSpacing(6)
        body.addWidget(section("Frames"))
        frames = QHBoxLayout()
        frames.setSpacing(4)
        frames.addWidget(label("From", self.start_spin))
        frames.addWidget(self.start_spin, 1)
        frames.addWidget(label("to", self.end_spin))
        frames.addWidget(self.end_spin, 1)
        frames.addWidget(label("every", self.stride_spin))
        frames.addWidget(self.stride_spin, 1)
        body.addLayout(frames)
        here = QHBoxLayout()
        here.addWidget(self.selection_label, 1)
        here.addWidget(self.start_here)
        here.addWidget(self.end_here)
        body.addLayout(here)

        body.addWidget(section("Edit"))
        form = QGridLayout()
        form.setHorizontalSpacing(8)
        form.setVerticalSpacing(4)
        form.setColumnStretch(1, 1)
        rows = (
            ("Source", self.source_prompt_edit),
            ("Target", self.target_prompt_edit),
            ("Phrase", self.edit_phrase_edit),
            ("Edit type", self.edit_type_combo),
            ("Method", self.method_combo),
        )
        for r, (text, w) in enumerate(rows):
            if w is self.target_prompt_edit:
                # on the field's first line of text, not its top edge: below its frame, padding
                # and document margin (the stylesheet's, hence polished first)
                lbl = label(text, w)
                w.ensurePolished()
                lbl.setContentsMargins(
                    0, w.contentsMargins().top() + round(w.document().documentMargin()), 0, 0
                )
                form.addWidget(lbl, r, 0, Qt.AlignmentFlag.AlignTop)
            else:
                form.addWidget(label(text, w), r, 0, Qt.AlignmentFlag.AlignVCenter)
            form.addWidget(w, r, 1)
        form.addWidget(self.method_hint, len(rows), 1)
        body.addLayout(form)

        body.addWidget(section("Control"))
        ctl = QGridLayout()
        ctl.setHorizontalSpacing(8)
        ctl.setVerticalSpacing(4)
        ctl.setColumnStretch(1, 1)
        ctl.setColumnStretch(3, 1)
        ctl.addWidget(label("Type", self.control_combo), 0, 0)
        ctl.addWidget(self.control_combo, 0, 1, 1, 3)
        ctl.addWidget(label("Low", self.low_spin), 1, 0)
        ctl.addWidget(self.low_spin, 1, 1)
        ctl.addWidget(label("High", self.high_spin), 1, 2)
        ctl.addWidget(self.high_spin, 1, 3)
        ctl.addWidget(label("Strength", self.scale_spin), 2, 0)
        ctl.addWidget(self.scale_spin, 2, 1)
        ctl.addWidget(label("ControlNet", self.controlnet_edit), 3, 0)
        ctl.addWidget(self.controlnet_edit, 3, 1, 1, 3)
        annotator_label = label("Annotator", self.annotator_edit)
        ctl.addWidget(annotator_label, 4, 0)
        annotator_row = QHBoxLayout()
        annotator_row.setSpacing(4)
        annotator_row.addWidget(self.annotator_edit, 1)
        annotator_row.addWidget(self.annotator_browse)
        ctl.addLayout(annotator_row, 4, 1, 1, 3)
        self.annotator_widgets: list[QWidget] = [
            annotator_label,
            self.annotator_edit,
            self.annotator_browse,
        ]
        body.addLayout(ctl)
        body.addLayout(self.strip)
        body.addWidget(self.strip_label)

        body.addWidget(section("Output and sampling"))
        out = QGridLayout()
        out.setHorizontalSpacing(8)
        out.setVerticalSpacing(4)
        out.setColumnStretch(1, 1)
        out.setColumnStretch(3, 1)
        pairs = (
            (("Width", self.width_spin), ("Height", self.height_spin)),
            (("Steps", self.steps_spin), ("CFG", self.cfg_spin)),
        )
        for r, pair in enumerate(pairs):
            for c, (text, w) in enumerate(pair):
                out.addWidget(label(text, w), r, 2 * c)
                out.addWidget(w, r, 2 * c + 1)
        r = len(pairs)
        out.addWidget(label("Fit", self.fit_combo), r, 0)
        out.addWidget(self.fit_combo, r, 1, 1, 3)  # the whole row: "Crop to fill" in full
        out.addWidget(label("Seed", self.seed_spin), r + 1, 0)
        out.addWidget(self.seed_spin, r + 1, 1)
        # The method's own rows share the grid's columns, so every field lines up; a method's rows
        # are hidden together (hidden rows take no space).
        r += 2
        window_label, interp_label = (
            label("Window", self.window_spin),
            label("Smoothing", self.interp_combo),
        )
        self.rife_label = label("RIFE weights", self.rife_edit)
        out.addWidget(window_label, r, 0)
        out.addWidget(self.window_spin, r, 1)
        # its own row: beside Window it made the panel wider than its dock
        out.addWidget(self.smoothing_check, r + 1, 0, 1, 4)
        out.addWidget(interp_label, r + 2, 0)
        out.addWidget(self.interp_combo, r + 2, 1, 1, 3)
        out.addWidget(self.rife_label, r + 3, 0)
        rife_row = QHBoxLayout()
        rife_row.setSpacing(4)
        rife_row.addWidget(self.rife_edit, 1)
        rife_row.addWidget(self.rife_browse)
        out.addLayout(rife_row, r + 3, 1, 1, 3)
        tuning_label, lr_label = label("Tuning steps", self.tuning_spin), label("LR", self.lr_spin)
        out.addWidget(tuning_label, r + 4, 0)
        out.addWidget(self.tuning_spin, r + 4, 1)
        out.addWidget(lr_label, r + 4, 2)
        out.addWidget(self.lr_spin, r + 4, 3)
        self.lovecon_widgets: list[QWidget] = [
            window_label,
            self.window_spin,
            self.smoothing_check,
            interp_label,
            self.interp_combo,
        ]
        self.rife_widgets: list[QWidget] = [self.rife_label, self.rife_edit, self.rife_browse]
        self.controlvideo_widgets: list[QWidget] = [
            tuning_label,
            self.tuning_spin,
            lr_label,
            self.lr_spin,
        ]
        body.addLayout(out)

        body.addStretch(1)
        scroll = scrolling_body(body)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll = scroll

        # Bottom, always in view: Edit, progress, what happened, the result and Export.
        bottom = QVBoxLayout()
        bottom.setSpacing(4)
        run = QHBoxLayout()
        run.addWidget(self.edit_button, 1)
        run.addWidget(self.cancel_button)
        bottom.addLayout(run)
        bottom.addWidget(self.progress_bar)
        bottom.addWidget(self.stage_label)
        bottom.addWidget(self.message_label)
        result = QGridLayout()
        result.setContentsMargins(0, 0, 0, 0)
        result.setVerticalSpacing(0)
        result.setColumnStretch(0, 1)
        result.addWidget(self.result_label, 0, 0)
        result.addWidget(self.export_button, 0, 1, Qt.AlignmentFlag.AlignTop)
        result.addWidget(self.result_times_label, 1, 0, 1, 2)
        bottom.addLayout(result)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 8)
        outer.setSpacing(6)
        clip = QHBoxLayout()
        clip.setContentsMargins(12, 8, 12, 0)
        clip.addWidget(self.clip_label, 1)
        outer.addLayout(clip)
        outer.addWidget(scroll, 1)
        bottom.setContentsMargins(12, 0, 12, 0)
        outer.addLayout(bottom)

    def _bind(self) -> None:
        s = self.state
        for name, w in (
            ("start", self.start_spin),
            ("end", self.end_spin),
            ("stride", self.stride_spin),
            ("source_prompt", self.source_prompt_edit),
            ("target_prompt", self.target_prompt_edit),
            ("edit_phrase", self.edit_phrase_edit),
            ("low_threshold", self.low_spin),
            ("high_threshold", self.high_spin),
            ("control_scale", self.scale_spin),
            ("controlnet", self.controlnet_edit),
            ("annotator", self.annotator_edit),
            ("width", self.width_spin),
            ("height", self.height_spin),
            ("steps", self.steps_spin),
            ("cfg_scale", self.cfg_spin),
            ("seed", self.seed_spin),
            ("window", self.window_spin),
            ("smoothing", self.smoothing_check),
            ("tuning_steps", self.tuning_spin),
            ("learning_rate", self.lr_spin),
            ("rife_weights", self.rife_edit),
        ):
            bind(s, name, w)
        for name, combo in (
            ("edit_type", self.edit_type_combo),
            ("method", self.method_combo),
            ("control_type", self.control_combo),
            ("fit", self.fit_combo),
            ("interpolator", self.interp_combo),
        ):
            _bind_choice(s, name, combo)

        self.drop_zone.file_dropped.connect(self.open_requested)
        self.open_button.clicked.connect(self._open_dialog)
        self.drop_zone.sample_button.clicked.connect(self.sample_requested)
        self.edit_button.clicked.connect(self._edit)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.export_button.clicked.connect(self._export_dialog)
        self.rife_browse.clicked.connect(self._rife_dialog)
        self.annotator_browse.clicked.connect(self._annotator_dialog)
        self.start_here.clicked.connect(self._start_here)
        self.end_here.clicked.connect(self._end_here)
        self.play_button.toggled.connect(lambda on: setattr(s, "playing", on))
        self.frame_slider.valueChanged.connect(lambda v: setattr(s, "position", v))
        self.timer.timeout.connect(self._tick)

        # A changed selection, size or control recipe asks for a new preview, once typing stops.
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(400)
        self._preview_timer.timeout.connect(self.preview_requested)
        for name in (
            "start",
            "end",
            "stride",
            "width",
            "height",
            "fit",
            "control_type",
            "low_threshold",
            "high_threshold",
            "annotator",
        ):
            getattr(s, f"{name}_changed").connect(lambda _v: self._schedule_preview())

        for name in (
            "source",
            "uploading",
            "preview",
            "preview_busy",
            "result_frames",
            "result_info",
            "position",
            "playing",
            "job_state",
            "stage",
            "step",
            "message",
            "method",
            "start",
            "end",
            "stride",
            "target_prompt",
            "edit_phrase",
            "source_prompt",
            "width",
            "height",
            "low_threshold",
            "annotator",
            "control_type",
            "eta_s",
            "smoothing",
            "interpolator",
            "rife_weights",
            "edit_type",
        ):
            getattr(s, f"{name}_changed").connect(lambda _v: self._refresh_all())

    # ----------------------------------------------------------------- intents
    def _schedule_preview(self) -> None:
        if self.state.source is not None:
            self._preview_timer.start()

    def _open_dialog(self) -> None:
        pattern = " ".join(f"*{s}" for s in VIDEO_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a video to edit", "", f"Videos ({pattern});;All files (*)"
        )
        if path:
            self.open_requested.emit(path)

    def _edit(self) -> None:
        self.show_problems = True
        self._refresh_all()
        if not self.state.problems():
            self.edit_requested.emit()

    def _rife_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "RIFE 4.6 weights (flownet.pkl)",
            _start_folder(self.state.rife_weights),
            "RIFE weights (*.pkl *.pth *.safetensors);;All files (*)",
        )
        if path:
            self.state.rife_weights = path

    def _annotator_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self,
            "Annotator weights (the lllyasviel/Annotators folder)",
            _start_folder(self.state.annotator),
        )
        if path:
            self.state.annotator = path

    def _export_dialog(self) -> None:
        s = self.state
        if s.result_path is None:
            return
        stem = Path(s.source_path).stem if s.source_path else "video"
        start = Path(s.source_path).parent if s.source_path else Path(s.result_path).parent
        path, _ = QFileDialog.getSaveFileName(
            self, "Export the edited video", str(start / f"{stem}-edit.mp4"), "MP4 video (*.mp4)"
        )
        if path:
            self.export_requested.emit(path)

    def _start_here(self) -> None:
        s = self.state
        if s.preview is not None and s.preview.indices:
            s.start = s.preview.indices[min(s.position, len(s.preview.indices) - 1)]

    def _end_here(self) -> None:
        s = self.state
        if s.preview is not None and s.preview.indices:
            s.end = s.preview.indices[min(s.position, len(s.preview.indices) - 1)] + 1

    def _tick(self) -> None:
        s = self.state
        n = s.shown_count
        if n:
            s.position = (s.position + 1) % n

    # ----------------------------------------------------------------- showing state
    def result_position(self) -> int | None:
        """The result frame shown beside source frame ``position`` (same place in time)."""
        s = self.state
        if s.result_frames is None or not s.result_frames.frames:
            return None
        n_r, n_s = len(s.result_frames.frames), max(1, s.shown_count)
        if n_r == n_s:
            return min(s.position, n_r - 1)
        return round(s.position * (n_r - 1) / max(1, n_s - 1))

    def _refresh_all(self) -> None:
        s = self.state
        has_source = s.source is not None
        # drop zone
        if s.uploading >= 0:
            self.drop_zone.title.setText("Sending the clip to the engine…")
            self.upload_bar.setValue(round(s.uploading * 1000))
        elif has_source:
            self.drop_zone.title.setText(s.source.name)
            self.drop_zone.detail.setText(s.source_summary().split(" · ", 1)[-1])
        self.upload_bar.setVisible(s.uploading >= 0)
        if s.uploading >= 0:
            self.clip_label.setText("Sending the clip to the engine…")
        elif has_source:
            # a line breaks between facts, never inside one ("3.0 s")
            facts = [f.replace(" ", "\N{NO-BREAK SPACE}") for f in s.source_summary().split(" · ")]
            self.clip_label.setText("Clip: " + " · ".join(facts))
        else:
            self.clip_label.setText(
                "No clip yet: drop a video on the window, or open one in the Video view."
            )
        self.open_button.setEnabled(s.uploading < 0)
        self.drop_zone.sample_button.setEnabled(s.uploading < 0)
        self.drop_zone.sample_button.setVisible(not has_source or s.uploading >= 0)
        # player
        pv = s.preview
        n = s.shown_count
        self.frame_slider.blockSignals(True)
        self.frame_slider.setRange(0, max(0, n - 1))
        self.frame_slider.setValue(min(s.position, max(0, n - 1)))
        self.frame_slider.blockSignals(False)
        self.frame_slider.setEnabled(n > 1)
        self.play_button.setEnabled(n > 1)
        if pv is not None and n:
            i = min(s.position, n - 1)
            self.source_view.set_png(pv.frames[i])
            self.frame_label.setText(s.frame_text(i))
        else:
            self.source_view.set_png(None)
            self.frame_label.setText("—")
        rp = self.result_position()
        self.result_view.set_png(s.result_frames.frames[rp] if rp is not None else None)
        if self.play_button.isChecked() != s.playing:
            self.play_button.setChecked(s.playing)
        self.play_button.setText("❚❚" if s.playing else "▶")
        interval = round(1000 / s.player_fps())
        if s.playing and n > 1:
            if not self.timer.isActive() or self.timer.interval() != interval:
                self.timer.start(interval)
        else:
            self.timer.stop()
        # frames
        self.selection_label.setText(s.selection_summary())
        self.start_here.setEnabled(pv is not None)
        self.end_here.setEnabled(pv is not None)
        # method
        self.method_hint.setText(METHODS[s.method][1])
        for w in self.lovecon_widgets:
            w.setVisible(s.method == "lovecon")
        for w in self.controlvideo_widgets:
            w.setVisible(s.method == "controlvideo")
        for w in self.rife_widgets:
            w.setVisible(s.uses_rife)
        self.interp_combo.setEnabled(s.smoothing)
        self.edit_phrase_edit.setEnabled(s.method == "lovecon")
        self.edit_phrase_edit.setPlaceholderText(EDIT_PHRASE_HINTS[s.edit_type])
        is_canny = s.control_type == "canny"
        self.low_spin.setEnabled(is_canny)
        self.high_spin.setEnabled(is_canny)
        for w in self.annotator_widgets:
            w.setVisible(not is_canny)
        # control strip
        self._fill_strip()
        # run
        busy = s.busy
        self.edit_button.setEnabled(has_source and not busy and s.uploading < 0)
        self.cancel_button.setEnabled(busy)
        self.cancel_button.setVisible(busy)
        self.progress_bar.setVisible(busy)
        self.progress_bar.setValue(round(1000 * s.step / s.total) if s.total else 0)
        self.stage_label.setText(s.progress_text())
        self.stage_label.setVisible(bool(self.stage_label.text()) and s.job_state != "done")
        level, text = s.message
        problems = s.problems() if self.show_problems else {}
        lines = [text] if text else []
        lines += [p for p in problems.values() if p not in lines]
        self.message_label.setText("\n".join(lines))
        self.message_label.setObjectName(
            "FieldError" if level in ("error", "warning") or problems else "Hint"
        )
        repolish(self.message_label)
        self.message_label.setVisible(bool(lines))
        for name, w in self._field_widgets.items():
            flag = "true" if name in problems else "false"
            if w.property("error") != flag:
                w.setProperty("error", flag)
                repolish(w)
        info = s.result_info
        if info and s.result_path is not None:
            method = METHODS.get(info.get("method", ""), (info.get("method", ""),))[0]
            facts = [
                method,
                f"{info['frames']} frames",
                f"{info['width']}×{info['height']}",
                f"{fps_text(info['fps'])} fps",
            ] + (["audio"] if info.get("has_audio") else [])
            # no-break spaces inside a stage: a line breaks between stages, never in "0.1 s"
            stages = ", ".join(
                f"{k} {v:.1f} s".replace(" ", "\N{NO-BREAK SPACE}")
                for k, v in info.get("stages_s", {}).items()
            )
            self.result_label.setText(f"{Path(s.result_path).name}\n{' · '.join(facts)}")
            self.result_label.setToolTip(str(s.result_path))
            self.result_times_label.setText(stages)
        else:
            self.result_label.setText("")
            self.result_times_label.setText("")
        self.result_label.setVisible(bool(self.result_label.text()))
        self.result_times_label.setVisible(bool(self.result_times_label.text()))
        self.export_button.setVisible(s.result_path is not None)

    def _fill_strip(self) -> None:
        s = self.state
        pv = s.preview
        maps = pv.maps if pv is not None else []
        # the maps the engine drew: a preview draws maps for only some of its frames
        # (map_count), so the strip picks among those rather than recomputing their positions
        drawn = [i for i, m in enumerate(maps) if m]
        picks = [drawn[k] for k in strip_positions(len(drawn))]
        while len(self.strip_views) < len(picks):
            view = FrameView("")
            view.setMinimumSize(24, 24)
            view.setMaximumHeight(72)
            self.strip_views.append(view)
            self.strip.addWidget(view)
        for k, view in enumerate(self.strip_views):
            if k < len(picks):
                view.set_png(maps[picks[k]])
                view.setToolTip(f"Control map of source frame #{pv.indices[picks[k]]}")
                view.show()
            else:
                view.set_png(None)
                view.hide()
        if s.preview_busy:
            self.strip_label.setText("Drawing the control maps…")
        elif pv is not None:
            self.strip_label.setText(
                f"{CONTROL_TYPES[s.control_type]} of {len(picks)} frames "
                "spread over the selection: what the ControlNet follows."
            )
        elif s.source is None:
            self.strip_label.setText("Control maps appear here once a clip is open.")
        self.strip_label.setVisible(True)


def _spin(lo: int, hi: int, tip: str, step: int = 1) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(lo, hi)
    spin.setSingleStep(step)
    spin.setToolTip(tip)
    spin.setMinimumWidth(56)
    return spin


def _combo(items: dict[str, str]) -> QComboBox:
    combo = QComboBox()
    # Long item texts ("Optical flow (built in)") must not force the panel
    # wider than its dock: the combo takes the row's width and its list shows them in full.
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(4)
    for key, text in items.items():
        combo.addItem(text, key)
    return combo


def _bind_choice(state: VideoState, name: str, combo: QComboBox) -> None:
    """Keep ``state.<name>`` (a key) and the combo's item data equal."""

    def to_widget(value: str) -> None:
        i = combo.findData(value)
        if i >= 0 and i != combo.currentIndex():
            combo.setCurrentIndex(i)

    def to_model(_i: int) -> None:
        value = combo.currentData()
        if value is not None and getattr(state, name) != value:
            setattr(state, name, value)

    to_widget(getattr(state, name))
    getattr(state, f"{name}_changed").connect(to_widget)
    combo.currentIndexChanged.connect(to_model)


def _start_folder(field_text: str) -> str:
    """Where a chooser opens for the path typed in a field: that folder, or the folder of the
    file it names (``~`` expanded: Qt does not); "" (Qt's default) when the field is empty."""
    text = field_text.strip()
    if not text:
        return ""
    path = Path(text).expanduser()
    return str(path if path.is_dir() else path.parent)
