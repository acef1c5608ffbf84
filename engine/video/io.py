"""Video in and out with PyAV: probe, decode a frame range with stride, fit to a size without
squashing, encode H.264 MP4 (yuv420p) at the source's frame rate with its audio kept.

Every failure a user can cause raises :class:`VideoError` with a message that says what is wrong
with the file and what to do.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
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
            f"({type(exc).__name__}). Re-export it as MP4 (H.264) and try again.", "source"
        ) from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path.name} has no video track", "source")
    return container


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
                "source")
        # The first frame proves the codec and pixel format work.
        first = None
        try:
            for frame in container.decode(stream):
                first = frame
                break
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise VideoError(f"{name}: its video cannot be decoded ({exc}); the file is "
                             "corrupt or truncated", "source") from None
        if first is None:
            raise VideoError(f"{name} has no video frames", "source")
        try:
            first.to_ndarray(format="rgb24")
        except (av.error.FFmpegError, ValueError, TypeError):
            raise VideoError(
                f"{name} uses pixel format {first.format.name}, which cannot be converted to "
                "RGB. Re-export it as 8-bit MP4 (yuv420p).", "source") from None
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
        raise VideoError(f"{name} is {_hms(duration)} long; Sfumato edits clips of up to "
                         f"{_hms(MAX_VIDEO_SECONDS)}. Cut the part you want to edit.", "source")
    w, h = first.width, first.height
    if rotation in (90, 270):
        w, h = h, w
    return VideoProbe(frames=frames, fps=round(fps, 4), duration_s=round(duration, 4), width=w,
                      height=h, pixel_format=pix_fmt, codec=codec, has_audio=has_audio,
                      variable_frame_rate=vfr, rotation=rotation)


def _hms(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def selected_indices(total: int, frames: FrameRange) -> list[int]:
    """Indices of the frames a :class:`FrameRange` picks from ``total`` frames."""
    end = total if frames.end is None else min(frames.end, total)
    if frames.start >= end:
        raise VideoError(f"The frame range starts at {frames.start} but the video has only "
                         f"{total} frames", "frames.start")
    return list(range(frames.start, end, frames.stride))


@dataclass
class Clip:
    """Decoded frames (N, H, W, 3) uint8 and where they came from."""

    frames: np.ndarray
    indices: list[int]
    fps: float  # of the selection: source fps ÷ stride
    start_s: float
    end_s: float
    probe: VideoProbe


def decode(path: Path, frames: FrameRange | None = None, max_frames: int | None = None) -> Clip:
    """Decode the selected frames as RGB. A variable-frame-rate video is first resampled to a
    constant rate (its average): frame i is the one shown at time i / fps.

    Frames stream through the decoder and only the selected ones are kept (as RGB), so a long
    or large clip never sits in memory whole; decoding stops after the last selected frame."""
    import av

    frames = frames or FrameRange()
    info = probe(path)
    wanted = selected_indices(info.frames, frames)
    if max_frames is not None and len(wanted) > max_frames:
        raise VideoError(f"{len(wanted)} frames are selected; at most {max_frames} can be edited "
                         "at once. Select a shorter range or a larger stride.", "frames")

    def rgb(frame) -> np.ndarray:
        arr = frame.to_ndarray(format="rgb24")
        rot = _rotation(frame)
        return np.ascontiguousarray(np.rot90(arr, k=rot // 90)) if rot else arr

    picked: dict[int, np.ndarray] = {}
    container = _open(path)
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    try:
        if info.variable_frame_rate:
            # Grid point g shows the last frame whose time is <= g.
            grid: list[float] | None = None
            prev, k = None, 0
            for n, frame in enumerate(container.decode(stream)):
                t = float(frame.time) if frame.time is not None else n / info.fps
                if grid is None:
                    grid = [t + i / info.fps for i in wanted]
                while k < len(wanted) and t > grid[k] + 1e-9:
                    picked[wanted[k]] = rgb(prev if prev is not None else frame)
                    k += 1
                if k == len(wanted):
                    break
                prev = frame
            while prev is not None and k < len(wanted):  # the last frame shows to the end
                picked[wanted[k]] = rgb(prev)
                k += 1
        else:
            want, last = set(wanted), wanted[-1]
            for n, frame in enumerate(container.decode(stream)):
                if n in want:
                    picked[n] = rgb(frame)
                if n >= last:
                    break
    except (av.error.FFmpegError, OSError):
        if not picked:
            raise VideoError(f"{Path(path).name}: no frame could be decoded", "source") from None
    finally:
        container.close()
    idx = [i for i in wanted if i in picked]  # a truncated file ends early
    if not idx:
        raise VideoError(f"{Path(path).name}: none of the selected frames could be decoded",
                         "frames")
    arr = np.stack([picked[i] for i in idx])
    fps = info.fps / frames.stride
    return Clip(arr, idx, fps, idx[0] / info.fps, (idx[-1] + frames.stride) / info.fps, info)


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
            out[i] = im[y:y + height, x:x + width]
        else:
            x, y = (width - sw) // 2, (height - sh) // 2
            out[i, y:y + sh, x:x + sw] = im
    return out


def read_audio(path: Path, start_s: float = 0.0, end_s: float | None = None):
    """(float32 samples (channels, n), rate) of the first audio track between the times, or
    None if the file has none."""
    import av

    container = av.open(str(path))
    try:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=44100)
        chunks = []
        for frame in container.decode(stream):
            for f in resampler.resample(frame):
                chunks.append(f.to_ndarray())
        if not chunks:
            return None
        samples = np.concatenate(chunks, axis=1)
    finally:
        container.close()
    a = int(start_s * 44100)
    b = samples.shape[1] if end_s is None else int(end_s * 44100)
    return samples[:, a:b], 44100


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
                chunk = np.ascontiguousarray(samples[:, a:a + size])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=a_stream.layout.name)
                frame.sample_rate, frame.pts = sr, pts
                pts += chunk.shape[1]
                for packet in a_stream.encode(frame):
                    out.mux(packet)
            for packet in a_stream.encode():
                out.mux(packet)
    os.replace(tmp, path)
    return path


def encode_like(frames: np.ndarray, path: Path, clip: Clip, source: Path) -> Path:
    """Encode edited frames at the selection's frame rate, with the source's audio of the same
    time span when it has any."""
    audio = read_audio(source, clip.start_s, clip.end_s) if clip.probe.has_audio else None
    return encode_video(frames, path, clip.fps, audio=audio)


def is_close_rate(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=0.01)
