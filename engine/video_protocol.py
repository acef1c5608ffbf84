"""The video part of the wire protocol (issue 7): uploads, control previews, ``video_edit`` jobs.

Pydantic and the standard library only, like :mod:`engine.protocol`, which re-exports every
name here (the app imports them from ``engine.protocol``). See ``docs/video.md``.

HTTP (token-checked like every route):

- ``POST /v1/uploads?name=clip.mp4``  body = the file's raw bytes (any ``Content-Type``)
  → 201 :class:`UploadInfo`. Videos are probed at once; an unreadable, empty, truncated,
  4-hour or unsupported file answers 4xx :class:`engine.protocol.ErrorBody` and is not kept.
  Limit: :data:`MAX_UPLOAD_BYTES`.
- ``GET  /v1/uploads``                → ``list[UploadInfo]`` (newest first)
- ``GET  /v1/uploads/{id}``           → :class:`UploadInfo`
- ``POST /v1/video/control_preview``  :class:`ControlPreviewRequest` → :class:`ControlPreview`
  (a few control maps, e.g. canny edges, so the panel shows them before editing; runs at once,
  not through the queue)
- ``POST /v1/jobs`` with ``{"job": {"kind": "video_edit", "params": VideoEditParams}}``.
  Progress events carry ``stage``: ``decoding``, ``control maps``, ``inversion``, ``tuning``,
  ``window k of n``, ``sampling``, ``smoothing``, ``encoding``. The result is a
  :class:`engine.protocol.ResultImage` with ``role == "video"`` (an MP4 file; ``video`` holds
  frames, fps and duration), fetched with ``GET /v1/jobs/{id}/files/{name}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

MAX_UPLOAD_BYTES = 2 * 1024**3  # 2 GiB
MAX_VIDEO_SECONDS = 30 * 60  # longer clips are refused at upload: edit a part of it first
MAX_EDIT_FRAMES = 1024
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".gif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


MIN_VIDEO_SIDE, MAX_VIDEO_SIDE = 8, 2048


def side_problem(v: int) -> str | None:
    """What is wrong with an output side of an edit or its preview (one rule for both, and
    for the panel), or None."""
    if v < MIN_VIDEO_SIDE or v > MAX_VIDEO_SIDE:
        return f"must be {MIN_VIDEO_SIDE}..{MAX_VIDEO_SIDE} pixels"
    if v % 8:
        return f"must be a multiple of 8 (try {v - v % 8 or 8} or {v - v % 8 + 8})"
    return None


def _check_side(v: int) -> int:
    problem = side_problem(v)
    if problem:
        raise ValueError(problem)
    return v


#: The width or height of an edited video and of its control preview.
OutputSide = Annotated[int, AfterValidator(_check_side)]


class VideoProbe(_Model):
    """What the engine read from a video's header and packet index."""

    frames: int = Field(description="Decodable video frames")
    fps: float = Field(description="Average frame rate (frames ÷ duration)")
    duration_s: float
    width: int = Field(description="Display width after rotation")
    height: int
    pixel_format: str = Field(description="FFmpeg name, e.g. yuv420p")
    codec: str
    has_audio: bool
    variable_frame_rate: bool = Field(
        description="Frame intervals differ by > 10 %: edits are resampled to constant `fps`"
    )
    rotation: int = Field(0, description="Display rotation in degrees (phones' portrait clips)")


class UploadInfo(_Model):
    id: str
    name: str = Field(description="The file name the client gave")
    kind: Literal["video", "image"]
    size_bytes: int
    path: str = Field(description="Where the engine keeps it (its data dir)")
    created_at: datetime
    width: int = 0
    height: int = 0
    probe: VideoProbe | None = Field(None, description="Set for videos")


class FrameRange(_Model):
    """Which source frames to edit: ``start`` ≤ i < ``end`` (None = to the end), every
    ``stride``-th. The output has one frame per selected frame at fps = source fps ÷ stride."""

    start: int = Field(0, ge=0)
    end: int | None = Field(None, ge=1)
    stride: int = Field(1, ge=1, le=100)

    @model_validator(mode="after")
    def _order(self) -> FrameRange:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


ControlType = Literal["canny", "hed", "depth", "pose"]


class ControlSpec(_Model):
    """The per-frame condition and the ControlNet that reads it."""

    type: ControlType = "canny"
    low_threshold: int = Field(100, ge=0, le=1000, description="Canny hysteresis, low")
    high_threshold: int = Field(200, ge=0, le=1000, description="Canny hysteresis, high")
    controlnet: str | None = Field(
        None,
        description="ControlNet folder path or id; None = the model's own "
        "(sfumato-tiny-canny for the embedded model)",
    )
    scale: float = Field(1.0, ge=0.0, le=4.0, description="controlnet_conditioning_scale")
    annotator: str | None = Field(
        None,
        description="Weights for hed/depth/pose annotators on disk (a folder); canny needs none",
    )


class LoveconFusion(_Model):
    """LOVECon's latent fusion with the DDIM-inversion latents (paper defaults, for 50 steps;
    step counts scale with ``steps``)."""

    attribute_blend: float = Field(0.03, ge=0, le=1, description="z ← (1−a)·z + a·z_src")
    attribute_blend_steps: int = Field(30, ge=0, description="… for the first this many of 50")
    attribute_mask_steps: int = Field(40, ge=0, description="z ← M·z + (1−M)·z_src until here")
    background_steps: int = Field(20, ge=0, description="z ← (1−M)·z + M·z_src")
    style_blend: float = Field(0.05, ge=0, le=1)
    style_steps: int = Field(20, ge=0)
    mask_threshold: float = Field(
        100 / 255,
        ge=0,
        le=1,
        description="On each phrase token's max-normalised map (the official 100 of 255)",
    )


class VideoEditParams(_Model):
    """Everything a video edit needs (the recipe kept with the result)."""

    model: str | None = Field(None, description="SD 1.x model id; None = loaded/default")
    source: str = Field(description="Upload id (POST /v1/uploads) or a video path on the engine")
    frames: FrameRange = Field(default_factory=FrameRange)
    width: OutputSide = Field(512, description="Output size, multiple of 8")
    height: OutputSide = Field(512)
    fit: Literal["crop", "pad"] = Field(
        "crop", description="Keep the aspect ratio: centre-crop or letterbox; never squash"
    )
    source_prompt: str = ""
    target_prompt: str
    negative_prompt: str = ""
    edit_phrase: str = Field(
        "",
        description="Words of source_prompt that LOVECon masks. Attribute edit: the object "
        "whose attribute changes (the edit stays inside it); background edit: the object to keep "
        "(the source is kept inside it, the rest changes). Empty = for attribute, the source words "
        "target_prompt drops; for background, the content words both prompts share",
    )
    edit_type: Literal["attribute", "background", "style"] = "attribute"
    method: Literal["lovecon", "controlvideo"] = "lovecon"
    control: ControlSpec = Field(default_factory=ControlSpec)
    steps: int = Field(50, ge=1, le=1000)
    cfg_scale: float = Field(12.0, ge=0.0, le=100.0)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    # LOVECon
    window: int = Field(8, ge=1, le=64, description="New frames per window")
    fusion: LoveconFusion = Field(default_factory=LoveconFusion)
    smoothing: bool = Field(True, description="Last-step and final frame-interpolation smoothing")
    interpolator: Literal["flow", "rife"] = Field(
        "flow",
        description="Smoothing's frame interpolator. flow: optical flow (OpenCV "
        "Farneback), built in; rife: RIFE 4.6 from `rife_weights` (not bundled)",
    )
    rife_weights: str | None = Field(
        None,
        description="For interpolator rife: path on the engine's machine to Practical-RIFE "
        "4.6's flownet.pkl (or .safetensors of it), or the folder holding flownet.pkl. Needed only "
        "where RIFE runs (LOVECon with smoothing on): there a missing path is refused at "
        "submit (422), an unreadable or mismatched file fails the job",
    )
    # ControlVideo
    tuning_steps: int = Field(
        80,
        ge=0,
        le=5000,
        description="One-shot tuning steps (paper: 80 canny, 300 hed, 500 depth, 1500 pose)",
    )
    learning_rate: float = Field(3e-5, gt=0, le=1.0)
    # Memory (ignored where they do not apply, e.g. fp16 on a float32 engine)
    fp16: bool = Field(
        True,
        description="Edit in the engine's float16 (the CUDA default); false runs this job in "
        "float32. No effect on a float32 or bfloat16 engine",
    )
    frame_chunk: int = Field(0, ge=0, description="UNet/VAE frames per call; 0 = all at once")
    vae_tiling: bool = False
    attention_slicing: bool = False

    @field_validator("target_prompt")
    @classmethod
    def _target(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("say what the video should become")
        return v

    @property
    def uses_rife(self) -> bool:
        return rife_runs(self.method, self.smoothing, self.interpolator)


#: Words that never name the object a background edit keeps.
_FUNCTION_WORDS = frozenset(
    (
        "a",
        "an",
        "the",
        "on",
        "in",
        "at",
        "of",
        "with",
        "and",
        "or",
        "to",
        "from",
        "by",
        "for",
        "into",
        "onto",
        "over",
        "under",
        "near",
        "its",
        "his",
        "her",
        "their",
        "is",
        "are",
        "was",
        "were",
        "be",
    )
)


def _words(prompt: str) -> list[str]:
    return prompt.lower().replace(",", " ").split()


def default_edit_phrase(source: str, target: str, edit_type: str = "attribute") -> str:
    """The mask words when the user names none. Attribute edit: the source words the target
    drops (they sit on the object that changes: "white" in "a white hat" → "a pink hat").
    Background edit: the content words both prompts share — the object kept ("cows walking" in
    "cows walking on the grass" → "cows walking on the snowfield"), as the official configs
    name it; the background words that change must not be masked, or the fusion restores them."""
    tgt, src = set(_words(target)), _words(source)
    if edit_type == "background":
        return " ".join(w for w in src if w in tgt and w not in _FUNCTION_WORDS)
    return " ".join(w for w in src if w not in tgt)


def missing_edit_phrase(p: VideoEditParams) -> str | None:
    """Why a LOVECon attribute or background edit has no mask words (no edit phrase, and none
    to derive from the prompts), or None: checked at submit and in the panel, not after the
    model has loaded. (Whether the words are in the source prompt's tokens is the job's.)"""
    if p.method != "lovecon" or p.edit_type == "style" or p.edit_phrase.strip():
        return None
    if default_edit_phrase(p.source_prompt, p.target_prompt, p.edit_type):
        return None
    if p.edit_type == "background":
        return (
            "A background edit masks the object it keeps: write the source prompt with "
            "it (e.g. 'cows on grass' → 'cows on snow'), or name it as the edit phrase."
        )
    return (
        "An attribute edit masks the object that changes: write the source prompt (what "
        "the video shows now, e.g. 'a white hat' → 'a pink hat') or an edit phrase, or "
        "choose the style edit, which changes everything."
    )


def frame_ranges(indices: list[int]) -> str:
    """``[3, 4, 5, 9]`` → ``"3–5, 9"`` (damaged frames in messages, engine and panel)."""
    runs: list[list[int]] = []
    for i in sorted(indices):
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"{a}–{b}" if b > a else str(a) for a, b in runs)


def rife_runs(method: str, smoothing: bool, interpolator: str) -> bool:
    """RIFE runs in an edit: only LOVECon smooths, and only with smoothing on. Elsewhere
    ``interpolator: rife`` is inert, so its weights are not asked for (engine and panel)."""
    return interpolator == "rife" and method == "lovecon" and smoothing


class VideoEditJob(_Model):
    kind: Literal["video_edit"] = "video_edit"
    params: VideoEditParams


class VideoResult(_Model):
    """Set on a ``role == "video"`` result."""

    frames: int
    fps: float
    duration_s: float
    has_audio: bool = False
    method: str = ""
    stages_s: dict[str, float] = Field(default_factory=dict, description="Seconds per stage")
    damaged_frames: list[int] = Field(
        default_factory=list,
        description="Source frames of the selection that decoded with "
        "errors (a corrupt file): edited as decoded, or as the last good frame",
    )
    notes: list[str] = Field(
        default_factory=list,
        description="What the user should know "
        "about the result: damaged frames, audio left out or silenced",
    )


class ControlPreviewRequest(_Model):
    source: str = Field(description="Upload id or path")
    frames: FrameRange = Field(default_factory=FrameRange)
    width: OutputSide = Field(512, description="As the edit's: what it previews it can edit")
    height: OutputSide = 512
    fit: Literal["crop", "pad"] = "crop"
    control: ControlSpec = Field(default_factory=ControlSpec)
    count: int = Field(8, ge=1, le=32, description="Maps spread evenly over the selected frames")
    map_count: int | None = Field(
        None,
        ge=0,
        le=32,
        description="Draw maps for only this many of the `count` frames, "
        "spread evenly (ends included), e.g. the panel's strip of 8 beside 32 player frames; "
        "0 = frames only (no map drawn, `control` unused); None = every frame. HED / depth / "
        "pose take seconds per frame on a CPU",
    )


class ControlPreview(_Model):
    width: int
    height: int
    frame_indices: list[int] = Field(description="Source frame index of each map")
    maps_png_b64: list[str] = Field(
        description="One PNG per frame, base64; empty where "
        "`map_count` left the frame without a map"
    )
    frames_png_b64: list[str] = Field(description="The resized source frames, same order")
    damaged_frames: list[int] = Field(
        default_factory=list,
        description="Source frames of the whole selection (not only "
        "these) that decoded with errors: torn or lost. An edit of it goes on; the panel "
        "names them so the user can pick another range",
    )
