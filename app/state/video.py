"""What the Video panel edits and shows (issue 7, docs/video.md). No widgets.

The source (the engine's probe of an uploaded clip), which frames to edit, the prompts, the
method and its options (defaults read from the wire contract, i.e. the papers' values), the
control maps' preview, the job's staged progress and the result. ``to_params()`` turns it into
a :class:`VideoEditParams`; ``problems()`` says, per field, what must be fixed first.

Frames for the player come from the engine (``POST /v1/video/control_preview`` returns the
resized frames beside the maps), so the app needs no video decoder: see docs/video.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from engine.protocol import (
    ControlPreviewRequest,
    ControlSpec,
    FrameRange,
    UploadInfo,
    VideoEditParams,
)
from engine.video_protocol import (
    MAX_EDIT_FRAMES,
    frame_ranges,
    missing_edit_phrase,
    rife_runs,
    side_problem,
)

from .observable import Observable, Property

#: Method → (label, one-line explanation shown under the choice).
METHODS: dict[str, tuple[str, str]] = {
    "lovecon": (
        "LOVECon",
        (
            "Training-free: edits in windows of frames that look at each other, so "
            "long clips stay consistent; starts at once."
        ),
    ),
    "controlvideo": (
        "ControlVideo",
        (
            "Tunes the model on this clip first (one-shot), then edits all frames "
            "together: highest fidelity on short clips; the tuning is cached."
        ),
    ),
}
EDIT_TYPES: dict[str, str] = {
    "attribute": "Change a thing",
    "background": "Change the background",
    "style": "Change the style",
}
#: What each edit type keeps (the combo's item tooltips).
EDIT_TYPE_TIPS: dict[str, str] = {
    "attribute": "Attribute edit: change one thing (its colour, its kind) and keep the rest",
    "background": "Background edit: keep the subject, change what is behind it",
    "style": "Style edit: change the whole look (painting, sketch…), keep the motion",
}
#: What LOVECon's edit phrase names, per edit type (the panel's placeholder), with an example.
EDIT_PHRASE_HINTS: dict[str, str] = {
    "attribute": "The thing that changes, e.g. hat (a white hat → a pink hat)",
    "background": "The subject to keep, e.g. cows (cows on grass → cows on snow)",
    "style": "Not used: a style edit changes everything",
}
#: The phrase field's tooltip: both cases in plain words.
EDIT_PHRASE_HELP = (
    "Words of the source prompt that LOVECon finds in the picture (its mask).\n"
    "Attribute edit: name the thing that changes; the edit stays inside it. "
    "Example: source “a woman with a white hat”, target “… a pink hat”, phrase “hat”.\n"
    "Background edit: name the subject to keep; it stays as in the source and everything "
    "around it changes. Example: source “cows on grass”, target “cows on snow”, phrase “cows” "
    "(not “grass”: that would keep the grass).\n"
    "Empty: attribute — the source words the target drops; background — the words both "
    "prompts share."
)
CONTROL_TYPES: dict[str, str] = {
    "canny": "Canny edges",
    "hed": "Soft edges (HED)",
    "depth": "Depth",
    "pose": "Pose",
}
FITS = {"crop": "Crop to fill", "pad": "Letterbox"}
#: LOVECon's smoothing interpolator → label. RIFE runs weights the user has on disk.
INTERPOLATORS: dict[str, str] = {
    "flow": "Optical flow (built in)",
    "rife": "RIFE 4.6 (weights on disk)",
}
#: The player shows at most this many frames of the selection (the engine sends them as PNGs).
PLAYER_FRAMES = 32
#: Control maps in the strip.
STRIP_MAPS = 8

_P = VideoEditParams.model_fields
_C = ControlSpec.model_fields


def _default(name: str):
    return _P[name].default


@dataclass(frozen=True)
class VideoFrames:
    """Frames the engine decoded for the player or the strip: PNG bytes, in order."""

    indices: list[int]
    frames: list[bytes]
    maps: list[bytes]


class VideoState(Observable):
    """Public, observable fields; the panel binds widgets to them."""

    # ----------------------------------------------------------------- source
    source = Property[UploadInfo | None](None, doc="The uploaded clip (its probe) or None")
    source_path = Property("", doc="Where the clip came from on this machine")
    uploading = Property(-1.0, doc="Upload progress 0..1; -1 when not uploading")
    # frame selection: start ≤ i < end, every stride-th; end 0 = to the end
    start = Property(0)
    end = Property(0)
    stride = Property(1)
    # ----------------------------------------------------------------- prompts & method
    source_prompt = Property("")
    target_prompt = Property("")
    edit_phrase = Property("")
    negative_prompt = Property("")
    edit_type = Property(_default("edit_type"))
    method = Property(_default("method"))
    # ----------------------------------------------------------------- control
    control_type = Property(_C["type"].default)
    low_threshold = Property(_C["low_threshold"].default)
    high_threshold = Property(_C["high_threshold"].default)
    control_scale = Property(float(_C["scale"].default))
    controlnet = Property("", doc="Folder or id; empty = the model's own")
    annotator = Property("", doc="Weights folder for hed/depth/pose")
    # ----------------------------------------------------------------- output & sampling
    width = Property(_default("width"))
    height = Property(_default("height"))
    fit = Property(_default("fit"))
    steps = Property(_default("steps"))
    cfg_scale = Property(float(_default("cfg_scale")))
    seed = Property(_default("seed"))
    window = Property(_default("window"))
    smoothing = Property(_default("smoothing"))
    interpolator = Property(_default("interpolator"))
    rife_weights = Property("", doc="RIFE 4.6's flownet.pkl (or its folder) for interpolator rife")
    tuning_steps = Property(_default("tuning_steps"))
    learning_rate = Property(float(_default("learning_rate")))
    # ----------------------------------------------------------------- what the engine said
    preview = Property[VideoFrames | None](None, doc="Control maps + frames of the selection")
    preview_busy = Property(False)
    job_id = Property("", doc="The edit running or last run")
    job_state = Property("", doc="'', queued, running, done, failed, cancelled")
    stage = Property("")
    step = Property(0)
    total = Property(0)
    eta_s = Property[float | None](None)
    result_path = Property[Path | None](None, doc="The edited MP4 on this machine")
    result_info = Property[dict | None](None, doc="frames, fps, size, method, seconds per stage")
    result_frames = Property[VideoFrames | None](None)
    #: The message in the panel (an upload refused, a failed job): level, text.
    message = Property(("", ""))
    #: The player's position in the shown frames and whether it plays.
    position = Property(0)
    playing = Property(False)

    # ----------------------------------------------------------------- source
    def set_source(self, info: UploadInfo, path: Path | str = "") -> None:
        """A clip the engine accepted: reset the selection and whatever came from the last one."""
        self.preview = None
        self.result_path = None
        self.result_info = None
        self.result_frames = None
        self.job_id, self.job_state, self.stage = "", "", ""
        self.position, self.playing = 0, False
        self.start, self.end, self.stride = 0, 0, 1
        self.source_path = str(path)
        self.source = info

    def fit_size(self, native: int) -> None:
        """Output size for the model: the short side at its native size, the long side keeping
        the source's aspect ratio (capped at 2× native), both multiples of 8."""
        if self.source is None or not native or not self.source.width or not self.source.height:
            return
        w, h = self.source.width, self.source.height
        short, long_ = min(w, h), max(w, h)
        a = max(8, native // 8 * 8)
        b = max(8, min(2 * native, round(long_ * native / short / 8) * 8))
        self.width, self.height = (b, a) if w >= h else (a, b)

    @property
    def total_frames(self) -> int:
        return self.source.probe.frames if self.source is not None and self.source.probe else 0

    @property
    def fps(self) -> float:
        return self.source.probe.fps if self.source is not None and self.source.probe else 0.0

    def selected(self) -> list[int]:
        """The source frame indices the edit will use (the engine's selected_indices)."""
        n = self.total_frames
        end = min(self.end or n, n)
        return list(range(min(self.start, n), end, max(1, self.stride)))

    @property
    def output_fps(self) -> float:
        return self.fps / max(1, self.stride)

    def source_summary(self) -> str:
        """ "clip.mp4 · 24 frames · 8 fps · 64×64 · 3.0 s · audio" (for the drop zone)."""
        s = self.source
        if s is None:
            return ""
        if s.probe is None:
            return f"{s.name} · {s.width}×{s.height} image"
        p = s.probe
        parts = [
            s.name,
            f"{p.frames} frames",
            f"{fps_text(p.fps)} fps",
            f"{p.width}×{p.height}",
            _duration(p.duration_s),
        ]
        if p.has_audio:
            parts.append("audio")
        if p.variable_frame_rate:
            parts.append("variable frame rate (resampled)")
        return " · ".join(parts)

    def selection_summary(self) -> str:
        n = len(self.selected())
        if not self.source:
            return ""
        return (
            f"{n} frame{'s' if n != 1 else ''} → {_duration(n / self.output_fps)} at "
            f"{fps_text(self.output_fps)} fps"
            if self.output_fps
            else f"{n} frames"
        )

    # ----------------------------------------------------------------- validation
    def problems(self) -> dict[str, str]:
        """Field → what to fix; empty when the edit can be sent."""
        out: dict[str, str] = {}
        if self.source is None:
            out["source"] = "Drop a video on the window or open one first."
        elif self.source.kind != "video":
            out["source"] = f"{self.source.name} is an image; the Video panel edits videos."
        n = self.total_frames
        if self.source is not None and n:
            if self.start >= n:
                out["start"] = f"The clip has only {n} frames (0…{n - 1})."
            if self.end and self.end <= self.start:
                out["end"] = "The last frame must come after the first."
            count = len(self.selected())
            if count > MAX_EDIT_FRAMES:
                out["stride"] = (
                    f"{count} frames selected; at most {MAX_EDIT_FRAMES} per edit: "
                    "a shorter range or a larger stride."
                )
        if not self.target_prompt.strip():
            out["target_prompt"] = "Say what the video should become."
        phrase = self.edit_phrase.strip()
        missing = missing_edit_phrase(
            VideoEditParams.model_construct(
                method=self.method,
                edit_type=self.edit_type,
                edit_phrase=self.edit_phrase,
                source_prompt=self.source_prompt,
                target_prompt=self.target_prompt,
            )
        )
        if missing and self.target_prompt.strip():
            out["edit_phrase"] = missing
        if phrase and self.method == "lovecon" and not _contains_words(self.source_prompt, phrase):
            out["edit_phrase"] = (
                f"“{phrase}” is not in the source prompt: LOVECon finds these "
                "source words in the picture."
            )
        for name in ("width", "height"):
            v = getattr(self, name)
            problem = side_problem(v)  # the engine's own rule, for the edit and its preview
            if problem:
                out[name] = f"{name.capitalize()} {v} px {problem}."
        if self.low_threshold > self.high_threshold:
            out["low_threshold"] = "The low threshold must not exceed the high one."
        if self.uses_rife and not self.rife_weights.strip():
            out["rife_weights"] = (
                "RIFE smoothing: choose its weights file (flownet.pkl of "
                "Practical-RIFE 4.6), or use the built-in optical flow."
            )
        if self.control_type != "canny" and not self.annotator.strip():
            out["annotator"] = (
                f"{CONTROL_TYPES[self.control_type]}: choose the folder with "
                "its annotator weights, or use canny."
            )
        return out

    @property
    def uses_rife(self) -> bool:
        """RIFE smooths this edit (only LOVECon smooths, and only when smoothing is on)."""
        return rife_runs(self.method, self.smoothing, self.interpolator)

    # ----------------------------------------------------------------- requests
    def frame_range(self) -> FrameRange:
        return FrameRange(start=self.start, end=self.end or None, stride=self.stride)

    def control_spec(self) -> ControlSpec:
        return ControlSpec(
            type=self.control_type,
            low_threshold=self.low_threshold,
            high_threshold=self.high_threshold,
            scale=self.control_scale,
            controlnet=self.controlnet.strip() or None,
            annotator=self.annotator.strip() or None,
        )

    def preview_request(self, count: int | None = None) -> ControlPreviewRequest:
        """Frames and maps for the player and the strip (up to PLAYER_FRAMES of the selection)."""
        assert self.source is not None
        n = max(1, len(self.selected()))
        return ControlPreviewRequest(
            source=self.source.id,
            frames=self.frame_range(),
            width=self.width,
            height=self.height,
            fit=self.fit,
            control=self.control_spec(),
            count=count or min(n, PLAYER_FRAMES),
            map_count=STRIP_MAPS,
        )

    def result_request(self) -> ControlPreviewRequest | None:
        """The result's frames, at the same positions as the source's in the player; no maps
        (the player shows none, and HED / depth / pose would cost seconds a frame)."""
        info = self.result_info or {}
        if not info.get("engine_path"):
            return None
        n = int(info.get("frames") or 1)
        return ControlPreviewRequest(
            source=info["engine_path"],
            width=int(info.get("width") or self.width),
            height=int(info.get("height") or self.height),
            count=min(n, PLAYER_FRAMES),
            map_count=0,
        )

    def to_params(self, model: str | None = None) -> VideoEditParams:
        """The edit as the engine takes it; raises ValueError naming the first problem."""
        problems = self.problems()
        if problems:
            raise ValueError(next(iter(problems.values())))
        assert self.source is not None
        return VideoEditParams(
            model=model,
            source=self.source.id,
            frames=self.frame_range(),
            width=self.width,
            height=self.height,
            fit=self.fit,
            source_prompt=self.source_prompt.strip(),
            target_prompt=self.target_prompt.strip(),
            negative_prompt=self.negative_prompt,
            edit_phrase=self.edit_phrase.strip(),
            edit_type=self.edit_type,
            method=self.method,
            control=self.control_spec(),
            steps=self.steps,
            cfg_scale=self.cfg_scale,
            seed=self.seed,
            window=self.window,
            smoothing=self.smoothing,
            interpolator="rife" if self.uses_rife else "flow",
            rife_weights=self.rife_weights.strip() if self.uses_rife else None,
            tuning_steps=self.tuning_steps,
            learning_rate=self.learning_rate,
        )

    # ----------------------------------------------------------------- the job
    def job_submitted(self, job_id: str) -> None:
        self.result_path = None
        self.result_info = None
        self.result_frames = None
        self.step, self.total, self.eta_s = 0, 0, None
        self.stage = "queued"
        self.job_state = "queued"
        self.job_id = job_id
        self.message = ("", "")

    def progress(self, stage: str, step: int, total: int, eta_s: float | None) -> None:
        self.job_state = "running"
        self.step, self.total, self.eta_s = step, total, eta_s
        self.stage = stage

    @property
    def busy(self) -> bool:
        return self.job_state in ("queued", "running")

    def progress_text(self) -> str:
        """ "window 2 of 3 — step 14 of 40 — about 0:32 left" (the panel's progress line)."""
        if self.job_state == "queued":
            return "Waiting in the queue…"
        if self.job_state == "done":
            return "Done."
        if self.job_state == "cancelled":
            return "Cancelled."
        if self.job_state == "failed":
            return "Failed."
        if self.job_state != "running":
            return ""
        parts = [self.stage.capitalize() if self.stage else "Working"]
        if self.total:
            parts.append(f"step {self.step} of {self.total}")
        if self.eta_s is not None and self.step:
            parts.append(f"about {_clock(self.eta_s)} left")
        return " — ".join(parts)

    def finished(self, state: str, message: str = "") -> None:
        self.job_state = state
        self.stage = ""
        self.eta_s = None
        if state == "failed":
            self.message = ("error", message or "The edit failed (no reason given).")
        elif state == "cancelled":
            self.message = ("info", "The edit was cancelled.")

    def result_ready(self, path: Path, info: dict) -> None:
        self.result_info = info
        self.result_path = path
        self.position = 0

    @property
    def shown_count(self) -> int:
        """Frames the player steps through (the source's preview frames)."""
        return len(self.preview.frames) if self.preview is not None else 0

    def frame_text(self, position: int) -> str:
        """The player's "13 / 36 · #24": which of the *selected* frames is shown (the count the
        selection line says) and its index in the source. The player steps through at most
        PLAYER_FRAMES of them, so the slider's positions are not the frame numbers."""
        pv = self.preview
        if pv is None or not pv.indices:
            return "—"
        index = pv.indices[max(0, min(position, len(pv.indices) - 1))]
        selected = self.selected()
        try:
            ordinal = selected.index(index) + 1
        except ValueError:  # a preview of an older selection, until the new one arrives
            return f"#{index}"
        return f"{ordinal} / {len(selected)} · #{index}"

    def player_fps(self) -> float:
        """Playback rate of the shown frames so a loop lasts as long as the edited clip."""
        n_sel, shown = len(self.selected()), self.shown_count
        if not shown or not self.output_fps:
            return 8.0
        return max(1.0, min(30.0, self.output_fps * shown / max(1, n_sel)))


def damaged_message(indices: list[int]) -> str:
    """The panel's warning when the preview found damaged frames in the selection."""
    n = len(indices)
    return (
        f"{'Frame' if n == 1 else 'Frames'} {frame_ranges(indices)} of this clip "
        f"{'is' if n == 1 else 'are'} damaged (the file has decode errors there: torn or "
        "green blocks). Edit anyway (they are edited as decoded, or as the last good "
        "frame), or choose a range without them."
    )


def strip_positions(n: int, count: int = STRIP_MAPS) -> list[int]:
    """Which of ``n`` preview maps the strip shows (spread evenly, ends included)."""
    if n <= count:
        return list(range(n))
    return [round(i * (n - 1) / (count - 1)) for i in range(count)]


def _contains_words(text: str, phrase: str) -> bool:
    words = re.findall(r"\w+", text.lower())
    want = re.findall(r"\w+", phrase.lower())
    return bool(want) and all(w in words for w in want)


def fps_text(fps: float) -> str:
    """A frame rate as every label shows it: two decimals at most ("30.02", "29.97", "8").

    One formatter for the source, the selection, the result and the Queue card, so a 30.02 fps
    clip is never "30 fps" in one place and "30.02 fps" in another (issue 14).
    """
    return f"{round(float(fps), 2):g}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    return _clock(seconds)


def _clock(seconds: float) -> str:
    s = max(0, round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
