"""Small damaged video files the tests make themselves (issue 16): an AVI (MPEG-4 Part 2, as
Xvid writes it, + AC3) whose first audio packet is broken, a clip torn in the middle, a
picture renamed as a video."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _frame(i: int, size: int) -> np.ndarray:
    x = np.zeros((size, size, 3), np.uint8)
    x[..., 0] = (np.arange(size)[None, :] * 4 + i * 5) % 256
    x[..., 1] = (np.arange(size)[:, None] * 3) % 256
    x[(i * 2) % size : (i * 2) % size + 8, :, 2] = 255
    return x


def write_clip(
    path: Path,
    frames: int = 48,
    size: int = 64,
    fps: int = 12,
    codec: str = "libx264",
    audio: str | None = None,
) -> Path:
    """A moving-gradient clip; ``audio`` an encoder name ("ac3", "aac") for a 440 Hz track."""
    import av

    fmt = "avi" if path.suffix == ".avi" else None
    with av.open(str(path), "w", format=fmt) as out:
        vs = out.add_stream(codec, rate=fps)
        vs.width = vs.height = size
        vs.pix_fmt = "yuv420p"
        if codec == "libx264":
            vs.options = {"g": "12"}  # a key frame every second: damage stays local
        a_stream = None
        if audio:
            a_stream = out.add_stream(audio, rate=44100)
            a_stream.layout = "stereo"
        for i in range(frames):
            for packet in vs.encode(av.VideoFrame.from_ndarray(_frame(i, size), format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if a_stream is not None:
            step = a_stream.codec_context.frame_size or 1024
            t = np.arange(int(44100 * frames / fps)) / 44100
            tone = (np.stack([np.sin(2 * np.pi * 440 * t)] * 2) * 0.3).astype(np.float32)
            pts = 0
            for a in range(0, tone.shape[1], step):
                chunk = np.ascontiguousarray(tone[:, a : a + step])
                f = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                f.sample_rate, f.pts = 44100, pts
                pts += chunk.shape[1]
                for packet in a_stream.encode(f):
                    out.mux(packet)
            for packet in a_stream.encode():
                out.mux(packet)
    return path


def damage_first_audio_packet(path: Path) -> Path:
    """Break the sync word of the first AC3 packet in place: FFmpeg's decoder then refuses
    it (``InvalidDataError … avcodec_send_packet()``), as with the real AVI of issue 16."""
    import av

    with av.open(str(path)) as container:
        packet = next(p for p in container.demux(container.streams.audio[0]) if p.size)
        pos = packet.pos
    data = bytearray(path.read_bytes())
    sync = data.find(b"\x0b\x77", pos)
    assert sync >= 0, "no AC3 sync word after the first audio packet's position"
    for k in range(sync, sync + 8):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def tear(path: Path, out: Path, span: int = 1600) -> Path:
    """A copy with ``span`` bytes around the middle of the file inverted (every third byte):
    the decoder refuses some packets and conceals others, like a torn download."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    for i in range(mid - span // 2, mid + span // 2, 3):
        data[i] ^= 0xFF
    out.write_bytes(bytes(data))
    return out


def picture_as_video(out: Path, fmt: str = "PNG") -> Path:
    """A still picture saved under a video's name (``out`` = e.g. ``holiday.avi``)."""
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 40, 40)).save(out, format=fmt)
    return out
