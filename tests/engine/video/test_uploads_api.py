"""POST /v1/uploads and /v1/video/control_preview through a real engine process."""

import base64
import io

import numpy as np
from PIL import Image


async def _upload(api, name: str, data: bytes, headers=None):
    async with api.s.post(
        api.url("/uploads"),
        params={"name": name},
        data=data,
        headers=api.engine.headers if headers is None else headers,
    ) as r:
        return r.status, await r.json()


async def test_upload_video_probe_and_control_preview(api, sample_clip):
    status, info = await _upload(api, "sample.mp4", sample_clip.read_bytes())
    assert status == 201, info
    assert info["kind"] == "video" and info["probe"]["frames"] == 24
    assert info["probe"]["fps"] == 8.0 and (info["width"], info["height"]) == (64, 64)
    _, again = await api.call("GET", f"/uploads/{info['id']}", expect=200)
    assert again == info
    _, listed = await api.call("GET", "/uploads", expect=200)
    assert [u["id"] for u in listed] == [info["id"]]

    _, prev = await api.call(
        "POST",
        "/video/control_preview",
        {
            "source": info["id"],
            "width": 64,
            "height": 48,
            "fit": "crop",
            "count": 4,
            "control": {"type": "canny", "low_threshold": 50, "high_threshold": 150},
        },
        expect=200,
    )
    assert prev["frame_indices"] == [0, 8, 15, 23]
    maps = [np.asarray(Image.open(io.BytesIO(base64.b64decode(b)))) for b in prev["maps_png_b64"]]
    assert all(m.shape[:2] == (48, 64) for m in maps)
    assert all(0 < (m > 0).mean() < 0.5 for m in maps)  # the sprite's edges, not all or nothing

    status, err = await api.call(
        "POST", "/video/control_preview", {"source": info["id"], "control": {"type": "depth"}}
    )
    assert status == 422 and "annotator" in err["message"]
    # map_count 0: the frames only (the result player's request); the control is not touched
    _, frames = await api.call(
        "POST",
        "/video/control_preview",
        {
            "source": info["id"],
            "width": 64,
            "height": 48,
            "count": 3,
            "map_count": 0,
            "control": {"type": "depth"},
        },
        expect=200,
    )
    assert frames["maps_png_b64"] == ["", "", ""] and frames["frame_indices"] == [0, 12, 23]
    assert [Image.open(io.BytesIO(base64.b64decode(b))).size for b in frames["frames_png_b64"]] == [
        (64, 48)
    ] * 3


async def test_bad_uploads_are_refused_and_engine_keeps_serving(api, sample_clip):
    status, err = await _upload(api, "notes.txt", b"hello")
    assert status == 400 and "not a video or image" in err["message"]
    status, err = await _upload(api, "fake.mp4", b"not really a video" * 100)
    assert status == 422 and "not a video FFmpeg can read" in err["message"]
    status, err = await _upload(api, "empty.mp4", b"")
    assert status == 400 and "empty" in err["message"]
    data = sample_clip.read_bytes()
    status, err = await _upload(api, "cut.mp4", data[: len(data) // 3])
    assert status == 422 and ("truncated" in err["message"] or "no video frames" in err["message"])
    status, err = await _upload(api, "broken.png", b"\x89PNG\r\n\x1a\nnope")
    assert status == 400 and "not an image" in err["message"]
    status, err = await _upload(api, "sample.mp4", data, headers={})
    assert status == 401
    status, err = await api.call(
        "POST",
        "/jobs",
        {"job": {"kind": "video_edit", "params": {"source": "nope", "target_prompt": "x"}}},
    )
    assert status == 422 and err["field"] == "job.params.source"
    _, uploads = await api.call("GET", "/uploads", expect=200)
    assert uploads == []  # nothing bad was kept
    status, ok = await _upload(api, "ok.mp4", data)
    assert status == 201
    # the engine's default model here (tiny-sd) has no ControlNet beside it
    status, err = await api.call(
        "POST",
        "/jobs",
        {"job": {"kind": "video_edit", "params": {"source": ok["id"], "target_prompt": "x"}}},
    )
    assert status == 422 and err["field"] == "job.params.control.controlnet"
    assert "No canny ControlNet" in err["message"]
    await api.call("GET", "/health", expect=200)


async def test_damaged_and_disguised_files(api, tmp_path):
    """A picture named .avi is refused by content; a torn clip previews with its damaged
    frames named; a preview size the edit would refuse is refused the same way."""
    from tests.support.damaged_video import picture_as_video, tear, write_clip

    status, err = await _upload(
        api, "holiday.avi", picture_as_video(tmp_path / "p.avi").read_bytes()
    )
    assert status == 422 and "is a picture (PNG), not a video" in err["message"]
    torn = tear(write_clip(tmp_path / "clean.mp4"), tmp_path / "torn.mp4")
    status, info = await _upload(api, "torn.mp4", torn.read_bytes())
    assert status == 201, info
    _, prev = await api.call(
        "POST",
        "/video/control_preview",
        {"source": info["id"], "width": 64, "height": 64, "count": 4, "map_count": 0},
        expect=200,
    )
    assert prev["damaged_frames"] and min(prev["damaged_frames"]) > 5
    _, clean = await api.call(
        "POST",
        "/video/control_preview",
        {
            "source": info["id"],
            "width": 64,
            "height": 64,
            "count": 2,
            "map_count": 0,
            "frames": {"end": 6},
        },
        expect=200,
    )
    assert clean["damaged_frames"] == []
    status, err = await api.call(
        "POST", "/video/control_preview", {"source": info["id"], "width": 60, "height": 64}
    )
    assert status == 422 and err["field"].endswith("width") and "multiple of 8" in err["message"]
