"""Real-world damage (issue 16): a broken audio packet, a torn clip, a picture named .avi,
one size rule for preview and edit, and a decoder whose memory holds only the frames kept."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from pydantic import ValidationError

from engine.video.io import Audio, VideoError, decode, encode_like, probe, read_audio
from engine.video_protocol import ControlPreviewRequest, FrameRange, VideoEditParams, frame_ranges
from tests.support.damaged_video import (
    damage_first_audio_packet,
    picture_as_video,
    tear,
    write_clip,
)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("dmg") / "clean.mp4")


def test_damaged_audio_packet_is_skipped_and_the_edit_keeps_its_sound(tmp_path):
    avi = write_clip(tmp_path / "xvid.avi", codec="mpeg4", audio="ac3")
    whole = read_audio(avi)
    assert whole is not None and whole.damaged_packets == 0
    damage_first_audio_packet(avi)
    import av

    with av.open(str(avi)) as c, pytest.raises(av.error.InvalidDataError):
        for _ in c.decode(c.streams.audio[0]):  # what failed every edit before
            pass
    audio = read_audio(avi)
    assert audio is not None and audio.damaged_packets == 1
    assert audio.samples.shape == whole.samples.shape  # the gap is silence: still in sync
    assert (
        np.abs(audio.samples[:, :1000]).max() == 0 and np.abs(audio.samples[:, -1000:]).max() > 0.1
    )

    # A span after the damage is the whole track's slice and reports no damage.
    later = read_audio(avi, 1.0, 2.5)
    assert later.damaged_packets == 0
    assert np.array_equal(later.samples, audio.samples[:, 44100 : int(2.5 * 44100)])
    clip = decode(avi, FrameRange(end=24))
    part = read_audio(avi, clip.start_s, clip.end_s)
    notes = encode_like(clip.frames, tmp_path / "out.mp4", clip, part)
    assert probe(tmp_path / "out.mp4").has_audio and "1 damaged packet" in notes[0]


def test_audio_that_cannot_be_encoded_never_loses_the_video(tmp_path, clean):
    clip = decode(clean, FrameRange(end=6))
    three_channels = Audio(np.zeros((3, 44100), np.float32), 44100)
    notes = encode_like(clip.frames, tmp_path / "o.mp4", clip, three_channels)
    out = probe(tmp_path / "o.mp4")
    assert out.frames == 6 and not out.has_audio and "has none" in notes[-1]


def test_torn_clip_names_its_damaged_frames_and_keeps_its_length(tmp_path, clean):
    torn = tear(clean, tmp_path / "torn.mp4")
    assert not decode(clean).damaged
    clip = decode(torn)
    assert len(clip.indices) == 48 and clip.frames.shape == (48, 64, 64, 3)
    assert clip.damaged, "the torn frames were not noticed"
    assert 0 not in clip.damaged and 47 not in clip.damaged  # damage stays near the middle
    assert min(clip.damaged) > 5 and max(clip.damaged) < 42
    # A lost frame repeats the last good one before it.
    first = min(clip.damaged)
    assert (
        np.array_equal(clip.frames[first], clip.frames[first - 1])
        or first in decode(torn, FrameRange(start=first, end=first + 1)).damaged
    )
    # A range before the damage is clean; a kept subset still reports the whole selection.
    assert not decode(torn, FrameRange(end=first)).damaged
    few = decode(torn, keep=[0, 47])
    assert few.indices == [0, 47] and few.damaged == clip.damaged
    assert frame_ranges([3, 4, 5, 9]) == "3–5, 9"


@pytest.mark.parametrize(
    "name,fmt,kind", [("holiday.avi", "PNG", "PNG"), ("clip.mp4", "JPEG", "JPEG")]
)
def test_a_picture_named_as_a_video_is_refused_by_content(tmp_path, name, fmt, kind):
    path = picture_as_video(tmp_path / name, fmt)
    with pytest.raises(VideoError, match=f"is a picture \\({kind}\\), not a video"):
        probe(path)


def test_preview_and_edit_share_one_size_rule():
    for side in (60, 4, 4096):
        with pytest.raises(ValidationError) as preview:
            ControlPreviewRequest(source="x", width=side)
        with pytest.raises(ValidationError) as edit:
            VideoEditParams(source="x", target_prompt="y", width=side)
        assert preview.value.errors()[0]["msg"] == edit.value.errors()[0]["msg"]
    assert ControlPreviewRequest(source="x", width=64, height=2048).width == 64


def test_decoding_holds_only_the_kept_frames_at_their_size(tmp_path):
    """O(kept frames × target size), not O(clip × source size): 120 frames of 320×240 are
    27 MiB as RGB; the preview keeps 4 at 32×32 (12 KiB)."""
    path = write_clip(tmp_path / "long.mp4", frames=120, size=320)
    frame_bytes = 320 * 320 * 3
    tracemalloc.start()
    try:
        clip = decode(path, size=(32, 32, "crop"), keep=[0, 40, 80, 119])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert clip.frames.shape == (4, 32, 32, 3)
    assert peak < 8 * frame_bytes, f"peak {peak / 2**20:.1f} MiB"  # a few frames in flight
    tracemalloc.start()
    try:
        clip = decode(path, FrameRange(stride=4), size=(64, 48, "pad"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert clip.frames.shape == (30, 48, 64, 3)
    assert peak < 8 * frame_bytes + 4 * clip.frames.nbytes


def test_a_range_inside_the_damage_shows_the_last_good_frame(tmp_path, clean):
    torn = tear(clean, tmp_path / "torn.mp4")
    damaged = decode(torn).damaged
    lost = damaged[4:7]  # well inside the torn span: packets the decoder refused
    clip = decode(torn, FrameRange(start=lost[0], end=lost[-1] + 1))
    assert clip.indices == lost and clip.damaged == lost
    before = decode(torn, FrameRange(start=lost[0] - 1, end=lost[0])).frames[0]
    assert all(np.array_equal(f, before) for f in clip.frames)  # the last frame shown
