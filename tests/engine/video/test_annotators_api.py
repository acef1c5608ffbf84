"""HED / depth / pose control maps through a real engine process:
POST /v1/video/control_preview with an annotator folder, clear 4xx for a wrong folder, a
missing or corrupt file, and a LOVECon edit driven by HED maps."""

import base64
import io

import numpy as np
from PIL import Image

from engine.models.registry import RESOURCES
from tests.engine.video.test_video_edit_api import _params, _run, _upload


def _maps(prev) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(b)))) for b in prev["maps_png_b64"]]


async def test_control_preview_with_annotator_weights(api, sample_clip, annotator_dir, tmp_path):
    up = await _upload(api, sample_clip)

    def request(kind, folder, count=4):
        return {
            "source": up["id"],
            "width": 64,
            "height": 48,
            "count": count,
            "control": {"type": kind, "annotator": str(folder)},
        }

    _, prev = await api.call(
        "POST", "/video/control_preview", request("hed", annotator_dir), expect=200
    )
    assert prev["frame_indices"] == [0, 8, 15, 23]
    maps = _maps(prev)
    assert all(m.shape[:2] == (48, 64) for m in maps)
    assert all(m.std() > 1 for m in maps) and not (maps[0] == maps[3]).all()
    _, again = await api.call(
        "POST", "/video/control_preview", request("hed", annotator_dir), expect=200
    )
    assert again["maps_png_b64"] == prev["maps_png_b64"]  # same weights, same maps

    _, prev = await api.call(
        "POST", "/video/control_preview", request("pose", annotator_dir, count=2), expect=200
    )
    assert [m.shape[:2] for m in _maps(prev)] == [(48, 64), (48, 64)]

    # maps for only some of the frames (the panel's strip beside its player frames)
    _, some = await api.call(
        "POST",
        "/video/control_preview",
        {**request("hed", annotator_dir, count=8), "map_count": 3},
        expect=200,
    )
    assert len(some["frames_png_b64"]) == 8 and all(some["frames_png_b64"])
    assert [bool(b) for b in some["maps_png_b64"]] == [1, 0, 0, 0, 1, 0, 0, 1]

    _, prev = await api.call(
        "POST", "/video/control_preview", request("depth", annotator_dir, count=2), expect=200
    )
    assert [m.shape[:2] for m in _maps(prev)] == [(48, 64), (48, 64)]
    assert all(m.std() > 1 for m in _maps(prev))

    # a wrong folder, a missing file, a corrupt file: 422 naming the problem; still serving
    status, err = await api.call(
        "POST", "/video/control_preview", request("hed", tmp_path / "nowhere")
    )
    assert status == 422 and "does not exist" in err["message"]
    assert err["field"] == "control.annotator"
    empty = tmp_path / "empty"
    empty.mkdir()
    status, err = await api.call("POST", "/video/control_preview", request("hed", empty))
    assert status == 422 and "ControlNetHED.pth is not in" in err["message"]
    (empty / "ControlNetHED.pth").write_bytes(b"garbage" * 100)
    status, err = await api.call("POST", "/video/control_preview", request("hed", empty))
    assert status == 422 and "ControlNetHED.pth" in err["message"]
    assert "could not be read" in err["message"]
    await api.call("GET", "/health", expect=200)


async def test_hed_edit_needs_a_hed_controlnet(api, sample_clip, annotator_dir, tmp_path):
    up = await _upload(api, sample_clip)
    hed = {"type": "hed", "annotator": str(annotator_dir)}
    # the embedded model ships a canny ControlNet only: refused at submit, saying so
    status, err = await api.call(
        "POST", "/jobs", {"job": {"kind": "video_edit", "params": _params(up["id"], control=hed)}}
    )
    assert status == 422 and err["field"] == "job.params.control.controlnet"
    assert "No hed ControlNet is available for Sfumato tiny" in err["message"]
    # a missing weights file is refused at submit too, before any work
    status, err = await api.call(
        "POST",
        "/jobs",
        {
            "job": {
                "kind": "video_edit",
                "params": _params(up["id"], control={**hed, "annotator": str(tmp_path)}),
            }
        },
    )
    assert status == 422 and err["field"] == "job.params.control.annotator"
    assert "ControlNetHED.pth is not in" in err["message"]

    # HED maps driving a ControlNet end to end (the canny one, named explicitly, reads them)
    canny_net = str(RESOURCES / "models" / "sfumato-tiny-canny")
    res, p, _ = await _run(
        api,
        _params(
            up["id"],
            control={**hed, "controlnet": canny_net},
            frames={"start": 0, "end": 4, "stride": 2},
        ),
        tmp_path,
    )
    assert (p.frames, p.fps, p.width, p.height) == (2, 4.0, 64, 64)
    assert "control maps" in res["video"]["stages_s"]
