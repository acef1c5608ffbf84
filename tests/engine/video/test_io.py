"""Video I/O: probe, decode with range and stride, crop/pad, encode with audio; bad files."""

import numpy as np
import pytest

from engine.video.io import VideoError, decode, encode_video, fit_frames, probe
from engine.video.sample_clip import sample_frames, write_sample_clip
from engine.video_protocol import FrameRange


def test_probe_sample_clip(sample_clip, sample_clip_audio):
    p = probe(sample_clip)
    assert (p.frames, p.fps, p.width, p.height) == (24, 8.0, 64, 64)
    assert p.pixel_format == "yuv420p" and p.codec == "h264"
    assert not p.has_audio and not p.variable_frame_rate
    assert probe(sample_clip_audio).has_audio


def test_decode_range_stride_matches_source(sample_clip):
    clip = decode(sample_clip, FrameRange(start=2, end=20, stride=3))
    assert clip.indices == [2, 5, 8, 11, 14, 17]
    assert clip.frames.shape == (6, 64, 64, 3) and clip.fps == pytest.approx(8 / 3)
    # H.264 at crf 18 is near-lossless on these flat images
    ref = sample_frames(24)[clip.indices].astype(float)
    assert np.abs(clip.frames.astype(float) - ref).mean() < 6


def test_crop_and_pad_keep_aspect():
    frames = np.zeros((1, 40, 80, 3), np.uint8)
    frames[:, :, 20:60] = 255  # a white square in the middle of a 2:1 frame
    crop = fit_frames(frames, 32, 32, "crop")
    assert crop.shape == (1, 32, 32, 3) and crop.mean() == pytest.approx(255, abs=3)
    pad = fit_frames(frames, 32, 32, "pad")
    assert pad[0, :7].max() == 0 and pad[0, -7:].max() == 0  # letterbox rows top and bottom
    assert pad[0, 16, 16].min() == 255


def test_encode_keeps_audio_and_rate(tmp_path, sample_clip_audio):
    from engine.video.io import encode_like, read_audio

    clip = decode(sample_clip_audio, FrameRange(stride=2))
    audio = read_audio(sample_clip_audio, clip.start_s, clip.end_s)
    assert encode_like(clip.frames, tmp_path / "o.mp4", clip, audio) == []
    p = probe(tmp_path / "o.mp4")
    assert p.frames == 12 and p.fps == pytest.approx(4.0) and p.has_audio


def test_portrait_and_odd_sizes_are_handled(tmp_path):
    path = write_sample_clip(tmp_path / "portrait.mp4", frames=6, width=36, height=66)
    p = probe(path)
    assert (p.width, p.height) == (36, 66)
    clip = decode(path)
    assert fit_frames(clip.frames, 64, 64, "pad").shape == (6, 64, 64, 3)
    odd = encode_video(np.zeros((3, 33, 35, 3), np.uint8), tmp_path / "odd.mp4", 10)
    assert (probe(odd).width, probe(odd).height) == (36, 34)


def test_variable_frame_rate_is_flagged_and_resampled(tmp_path):
    import av

    path = tmp_path / "vfr.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=30)
        s.width = s.height = 32
        s.pix_fmt = "yuv420p"
        s.codec_context.time_base = __import__("fractions").Fraction(1, 1000)
        t = 0
        for i in range(12):
            f = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 20, np.uint8), format="rgb24")
            f.pts, f.time_base = t, s.codec_context.time_base
            t += 33 if i % 2 else 100
            for pkt in s.encode(f):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    p = probe(path)
    assert p.variable_frame_rate
    clip = decode(path)
    assert len(clip.frames) == p.frames
    # A selection is the same frames as those of the whole clip (decoding streams and keeps
    # only the selected frames, so this is what checks the resampling grid is kept).
    sub = decode(path, FrameRange(start=3, end=10, stride=2))
    assert sub.indices == [3, 5, 7, 9]
    assert np.array_equal(sub.frames, clip.frames[[3, 5, 7, 9]])
    # Frame i is the one shown at i / fps: brightness never runs ahead of time.
    shown = clip.frames.reshape(len(clip.frames), -1).mean(1)
    assert np.all(np.diff(shown) >= -3)


def test_a_selection_equals_the_same_frames_of_the_whole_clip(sample_clip):
    whole = decode(sample_clip)
    part = decode(sample_clip, FrameRange(start=5, end=17, stride=4))
    assert part.indices == [5, 9, 13]
    assert np.array_equal(part.frames, whole.frames[[5, 9, 13]])


@pytest.mark.parametrize(
    "content,needle",
    [
        (b"", "empty"),
        (b"this is a text file, not a video" * 10, "not a video"),
    ],
)
def test_bad_files_have_clear_messages(tmp_path, content, needle):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError, match=needle):
        probe(path)


def test_truncated_file(tmp_path, sample_clip):
    data = sample_clip.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(VideoError, match="corrupt or truncated|no video frames"):
        probe(path)


def test_image_is_not_a_video(tmp_path):
    from PIL import Image

    path = tmp_path / "still.png"
    Image.new("RGB", (16, 16)).save(path)
    # FFmpeg reads a PNG as a one-frame "video"; it must still probe cleanly (1 frame)
    try:
        assert probe(path).frames == 1
    except VideoError as exc:
        assert "video" in exc.message


def test_four_hour_video_is_refused(tmp_path):
    import av

    path = tmp_path / "long.mp4"
    with av.open(str(path), "w") as out:  # 2 frames 4 h apart: a 4-hour stream, tiny file
        s = out.add_stream("libx264", rate=1)
        s.width = s.height = 16
        s.pix_fmt = "yuv420p"
        for pts in (0, 4 * 3600):
            f = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            f.pts = pts
            for pkt in s.encode(f):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    with pytest.raises(VideoError, match="long"):
        probe(path)


def test_range_past_the_end(sample_clip):
    with pytest.raises(VideoError, match="only 24 frames"):
        decode(sample_clip, FrameRange(start=30))


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_zero_frame_video(tmp_path, ext):
    import av

    path = tmp_path / f"zero.{ext}"
    with av.open(str(path), "w") as out:  # a video stream that never gets a frame
        s = out.add_stream("mpeg4", rate=8)
        s.width = s.height = 16
        s.pix_fmt = "yuv420p"
        out.start_encoding()  # write the header although no frame follows
    with pytest.raises(VideoError, match="no video|not a video"):
        probe(path)
