"""Video in and out with PyAV: probe, decode a frame range with stride, fit to a size without
squashing, encode H.264 MP4 (yuv420p) at the source's frame rate with its audio kept.

Every failure a user can cause raises :class:`VideoError` with a message that says what is wrong
with the file and what to do.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from engine.errors import EngineError
from engine.video_protocol import MAX_VIDEO_SECONDS, FrameRange, VideoProbe

log = logging.getLogger(__name__)
#: Frame intervals spread more than this (relative) → variable frame rate.
VFR_TOLERANCE = 0.10


class VideoError(EngineError):
    status = 422


def _open(path: Path):
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path} does not exist", "source")
    if path.stat().st_size == 0:
        raise VideoError(f"{path.name} is empty (0 bytes)", "source")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(
            f"{path.name} is not a video FFmpeg can read, or it is corrupt or truncated "
            f"({type(exc).__name__}). Re-export it as MP4 (H.264) and try again.",
            "source",
        ) from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path.name} has no video track", "source")
    kind = _picture_format(container.format.name)
    if kind:
        container.close()
        raise VideoError(
            f"{path.name} is a picture ({kind}), not a video, whatever its name "
            "says. Drop a video clip (MP4, MOV, MKV, WebM, AVI or GIF); a picture's "
            "recipe is read by dropping it on the window.",
            "source",
        )
    return container


def _picture_format(name: str) -> str:
    """The image format FFmpeg recognised (PNG, JPEG, …) when a file is a still picture, by
    its content: FFmpeg's image demuxers are ``image2`` and ``<codec>_pipe``."""
    if name.endswith("_pipe"):
        return name.removesuffix("_pipe").upper()
    return "image sequence" if name in ("image2", "image2pipe") else ""


def _rotation(frame) -> int:
    return int(getattr(frame, "rotation", 0) or 0) % 360


def probe(path: Path) -> VideoProbe:
    """Read a video's facts; reads packets (not pixels) except for the first frame."""
    import av

    container = _open(path)
    name = Path(path).name
    try:
        stream = container.streams.video[0]
        duration = None
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        if duration is not None and duration > MAX_VIDEO_SECONDS:
            raise VideoError(
                f"{name} is {_hms(duration)} long; Sfumato edits clips of up to "
                f"{_hms(MAX_VIDEO_SECONDS)}. Cut the part you want to edit and upload that.",
                "source",
            )
        # The first frame proves the codec and pixel format work.
        first = None
        try:
            for frame in container.decode(stream):
                first = frame
                break
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise VideoError(
                f"{name}: its video cannot be decoded ({exc}); the file is corrupt or truncated",
                "source",
            ) from None
        if first is None:
            raise VideoError(f"{name} has no video frames", "source")
        try:
            first.to_ndarray(format="rgb24")
        except (av.error.FFmpegError, ValueError, TypeError):
            raise VideoError(
                f"{name} uses pixel format {first.format.name}, which cannot be converted to "
                "RGB. Re-export it as 8-bit MP4 (yuv420p).",
                "source",
            ) from None
        pix_fmt, rotation = first.format.name, _rotation(first)
        codec = stream.codec_context.name
        has_audio = bool(container.streams.audio)
        container.seek(0)
        times = []
        try:
            for packet in container.demux(stream):
                if packet.pts is not None and packet.size:
                    times.append(float(packet.pts * stream.time_base))
        except (av.error.FFmpegError, OSError):
            log.info("%s: packets end early (truncated); using the %d before", name, len(times))
    finally:
        container.close()
    if not times:
        raise VideoError(f"{name} has no video frames", "source")
    times.sort()
    frames = len(times)
    if frames > 1:
        deltas = np.diff(times)
        mean_dt = float(np.mean(deltas)) or 1e-9
        vfr = bool(np.max(np.abs(deltas - mean_dt)) > VFR_TOLERANCE * mean_dt)
        fps = 1.0 / mean_dt
    else:
        vfr, fps = False, float(stream.average_rate or 1)
    duration = frames / fps
    if duration > MAX_VIDEO_SECONDS:
        raise VideoError(
            f"{name} is {_hms(duration)} long; Sfumato edits clips of up to "
            f"{_hms(MAX_VIDEO_SECONDS)}. Cut the part you want to edit.",
            "source",
        )
    w, h = first.width, first.height
    if rotation in (90, 270):
        w, h = h, w
    return VideoProbe(
        frames=frames,
        fps=round(fps, 4),
        duration_s=round(duration, 4),
        width=w,
        height=h,
        pixel_format=pix_fmt,
        codec=codec,
        has_audio=has_audio,
        variable_frame_rate=vfr,
        rotation=rotation,
    )


def _hms(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def selected_indices(total: int, frames: FrameRange) -> list[int]:
    """Indices of the frames a :class:`FrameRange` picks from ``total`` frames."""
    end = total if frames.end is None else min(frames.end, total)
    if frames.start >= end:
        raise VideoError(
            f"The frame range starts at {frames.start} but the video has only {total} frames",
            "frames.start",
        )
    return list(range(frames.start, end, frames.stride))


@dataclass
class Clip:
    """Decoded frames (N, H, W, 3) uint8 (at the asked size) and where they came from."""

    frames: np.ndarray
    indices: list[int]  # source index of each frame kept
    fps: float  # of the selection: source fps ÷ stride
    start_s: float
    end_s: float
    probe: VideoProbe
    #: Selected source frames that decoded with errors (torn, green blocks) or were lost (a
    #: packet the decoder refused; shown as the last good frame before it). Over the whole
    #: selection, kept or not.
    damaged: list[int] = field(default_factory=list)


#: Give up when this many packets in a row fail to decode: the rest of the file is not video.
MAX_BAD_PACKETS_IN_A_ROW = 250


def decode(
    path: Path,
    frames: FrameRange | None = None,
    max_frames: int | None = None,
    *,
    size: tuple[int, int, str] | None = None,
    keep: list[int] | None = None,
    info: VideoProbe | None = None,
) -> Clip:
    """Decode the selected frames as RGB. A variable-frame-rate video is first resampled to a
    constant rate (its average): frame i is the one shown at time i / fps.

    Memory holds the frames *kept*, at the asked size, and nothing that grows with the clip:
    packets stream through the decoder one at a time, a frame is converted to RGB only if it is
    kept, and scaled (``size`` = (width, height, "crop"|"pad"), see :func:`fit_frames`) before
    the next is decoded; decoding stops after the last selected frame. ``keep`` = positions
    within the selection to keep (the preview's few frames); None keeps all.

    A packet the decoder refuses, or a frame it flags corrupt, marks that frame damaged
    (:attr:`Clip.damaged`) instead of ending the clip there: a lost frame repeats the last good
    one, so the selection keeps its length and timing. ``info``: the probe, if already made."""
    import av

    frames = frames or FrameRange()
    info = info or probe(path)
    wanted = selected_indices(info.frames, frames)
    if max_frames is not None and len(wanted) > max_frames:
        raise VideoError(
            f"{len(wanted)} frames are selected; at most {max_frames} can be edited "
            "at once. Select a shorter range or a larger stride.",
            "frames",
        )
    kept = wanted if keep is None else [wanted[k] for k in keep if 0 <= k < len(wanted)]
    if not kept:
        raise VideoError("No frames are selected", "frames")

    def rgb(frame) -> np.ndarray:
        arr = frame.to_ndarray(format="rgb24")
        rot = _rotation(frame)
        arr = np.ascontiguousarray(np.rot90(arr, k=rot // 90)) if rot else arr
        return fit_frames(arr[None], size[0], size[1], size[2])[0] if size else arr

    picked: dict[int, np.ndarray] = {}
    damaged: set[int] = set()
    container = _open(path)
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    tb = float(stream.time_base) if stream.time_base else 1 / info.fps
    t0 = (
        float(stream.start_time * stream.time_base)
        if stream.start_time is not None and stream.time_base
        else 0.0
    )
    keep_set, want_set, last = set(kept), set(wanted), wanted[-1]
    # VFR: grid point i shows the last frame whose time is <= t_first + wanted_i / fps.
    vfr = info.variable_frame_rate

    def index_at(t: float) -> int:
        if vfr:  # the first grid point at or after t
            return max(0, math.ceil((t - t0) * info.fps - 1e-6))
        return round((t - t0) * info.fps)

    shown = None  # the last good frame, (index, av frame)
    decoded = -1  # the highest source index handled
    bad_run = 0
    try:
        for packet in container.demux(stream):
            try:
                out = packet.decode()
            except av.error.EOFError:
                break
            except (av.error.InvalidDataError, av.error.UndefinedError, ValueError):
                bad_run += 1
                if packet.pts is not None:
                    damaged.add(index_at(packet.pts * tb))
                if bad_run > MAX_BAD_PACKETS_IN_A_ROW:
                    break
                continue
            bad_run = 0
            for frame in out:
                n = index_at(frame.time) if frame.time is not None else decoded + 1
                if n <= decoded and not (vfr and n == decoded):
                    n = decoded + 1  # a repeated timestamp: the next slot
                # Selected frames between the last one handled and this one were lost, or
                # (VFR) show the previous frame; both repeat the last good frame.
                for k in range(decoded + 1, n):
                    if k in keep_set:
                        picked[k] = rgb(shown if shown is not None else frame)
                    if not vfr and k in want_set:
                        damaged.add(k)
                if frame.is_corrupt:
                    damaged.add(n)
                if n in keep_set:
                    picked[n] = rgb(frame)
                shown, decoded = frame, n
                if decoded >= last:
                    break
            if decoded >= last:
                break
    except (av.error.FFmpegError, OSError):
        pass  # a truncated file ends early
    finally:
        container.close()
    if vfr and shown is not None:  # the last frame shows to the end
        for k in kept:
            if k > decoded:
                picked[k] = rgb(shown)
    if not picked:
        raise VideoError(
            f"{Path(path).name}: none of the selected frames could be decoded; the "
            "file is corrupt there. Pick another range, or re-export the clip.",
            "frames",
        )
    idx = [i for i in kept if i in picked]  # a truncated file ends early
    arr = np.stack([picked.pop(i) for i in idx])
    fps = info.fps / frames.stride
    return Clip(
        arr,
        idx,
        fps,
        idx[0] / info.fps,
        (idx[-1] + frames.stride) / info.fps,
        info,
        sorted(damaged & want_set),
    )


def fit_frames(frames: np.ndarray, width: int, height: int, mode: str = "crop") -> np.ndarray:
    """Resize (N, H, W, 3) frames to (N, height, width, 3) keeping the aspect ratio: ``crop``
    scales to cover and centre-crops; ``pad`` scales to fit and letterboxes with black."""
    from PIL import Image

    n, h, w, _ = frames.shape
    if (h, w) == (height, width):
        return frames
    scale = max(width / w, height / h) if mode == "crop" else min(width / w, height / h)
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    out = np.zeros((n, height, width, 3), np.uint8)
    for i in range(n):
        im = np.asarray(Image.fromarray(frames[i]).resize((sw, sh), Image.BICUBIC))
        if mode == "crop":
            x, y = (sw - width) // 2, (sh - height) // 2
            out[i] = im[y : y + height, x : x + width]
        else:
            x, y = (width - sw) // 2, (height - sh) // 2
            out[i, y : y + sh, x : x + sw] = im
    return out


@dataclass
class Audio:
    """The first audio track between two times: float32 ``samples`` (channels, n) at ``rate``,
    and how many packets the decoder refused (each left as silence of its length, so the
    sound stays in sync with the frames)."""

    samples: np.ndarray
    rate: int
    damaged_packets: int = 0
    damaged_s: float = 0.0


AUDIO_RATE = 44100


def read_audio(path: Path, start_s: float = 0.0, end_s: float | None = None) -> Audio | None:
    """The source's audio between the times (stereo, 44.1 kHz), or None if it has none or none
    of it decodes. Damaged packets (a real AVI's AC3 whose first packet is broken) are skipped
    and counted instead of failing the whole read. Only the span asked for is kept: memory
    does not grow with where in a long clip the span lies."""
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError):
        return None
    first = int(start_s * AUDIO_RATE)
    stop = None if end_s is None else int(end_s * AUDIO_RATE)
    chunks: list[np.ndarray] = []
    bad, bad_s, last_duration = 0, 0.0, 0
    pos = 0  # samples of the track so far (resampled), kept or not

    def add(arr: np.ndarray) -> None:
        nonlocal pos
        lo, hi = (
            max(first - pos, 0),
            arr.shape[1] if stop is None else min(arr.shape[1], stop - pos),
        )
        if hi > lo:
            chunks.append(arr[:, lo:hi])
        pos += arr.shape[1]

    try:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        tb = float(stream.time_base) if stream.time_base else 0.0
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
        for packet in container.demux(stream):
            if stop is not None and pos >= stop:
                break
            try:
                frames = packet.decode()
            except av.error.EOFError:
                break
            except (av.error.InvalidDataError, av.error.UndefinedError, ValueError):
                n = round((packet.duration or last_duration) * tb * AUDIO_RATE)
                if n and pos + n > first and (stop is None or pos < stop):
                    bad += 1
                    bad_s += n / AUDIO_RATE
                add(np.zeros((2, n), np.float32))  # silence of its length keeps the sync
                continue
            last_duration = packet.duration or last_duration
            for frame in frames:
                for f in resampler.resample(frame):
                    add(f.to_ndarray())
        else:
            for f in resampler.resample(None):
                add(f.to_ndarray())
    except (av.error.FFmpegError, OSError):
        pass  # a truncated track: keep what came before
    finally:
        container.close()
    if not chunks:
        return None
    return Audio(np.concatenate(chunks, axis=1), AUDIO_RATE, bad, round(bad_s, 3))


def encode_video(frames: np.ndarray, path: Path, fps: float, audio=None, crf: int = 18) -> Path:
    """Write (N, H, W, 3) uint8 frames as H.264 MP4 (yuv420p, constant ``fps``); ``audio`` =
    (samples (n,) or (channels, n) float32 in [-1, 1], rate) is added as AAC. Atomic."""
    import av

    n, h, w, _ = frames.shape
    if n == 0:
        raise VideoError("No frames to encode")
    # yuv420p needs even sides: pad by one pixel (edge copy) rather than squash.
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        n, h, w, _ = frames.shape
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(tmp), mode="w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": str(crf), "preset": "medium"}
        a_stream = None
        if audio is not None:
            samples, sr = audio
            samples = np.atleast_2d(np.asarray(samples, np.float32))
            a_stream = out.add_stream("aac", rate=sr)
            a_stream.layout = "stereo" if samples.shape[0] == 2 else "mono"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[i]), format="rgb24")
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if a_stream is not None and samples.shape[1]:
            size = a_stream.codec_context.frame_size or 1024
            pts = 0
            for a in range(0, samples.shape[1], size):
                chunk = np.ascontiguousarray(samples[:, a : a + size])
                frame = av.AudioFrame.from_ndarray(
                    chunk, format="fltp", layout=a_stream.layout.name
                )
                frame.sample_rate, frame.pts = sr, pts
                pts += chunk.shape[1]
                for packet in a_stream.encode(frame):
                    out.mux(packet)
            for packet in a_stream.encode():
                out.mux(packet)
    os.replace(tmp, path)
    return path


def encode_like(frames: np.ndarray, path: Path, clip: Clip, audio: Audio | None) -> list[str]:
    """Encode edited frames at the selection's frame rate, with the source's audio of the same
    span (read *before* the edit, :func:`read_audio`). If muxing the audio fails, the video is
    written without it: an edit is never lost to its sound. Returns notes for the user."""
    import av

    notes: list[str] = []
    if audio is not None and audio.damaged_packets:
        notes.append(
            f"The source's audio had {audio.damaged_packets} damaged packet"
            f"{'s' if audio.damaged_packets != 1 else ''} "
            f"({audio.damaged_s:g} s): silent there."
        )
    pair = (audio.samples, audio.rate) if audio is not None else None
    try:
        encode_video(frames, path, clip.fps, audio=pair)
    except (av.error.FFmpegError, ValueError) as exc:
        if pair is None:
            raise
        log.warning("audio could not be encoded (%s); writing the video without it", exc)
        encode_video(frames, path, clip.fps, audio=None)
        notes.append(f"The audio could not be encoded ({type(exc).__name__}); the video has none.")
    return notes


def is_close_rate(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=0.01)
