"""LOVECon with RIFE smoothing through a real engine process on the embedded model: weights in
Practical-RIFE's release format (random, saved like flownet.pkl) give an MP4 of the selected
frames; a missing file is refused at submit (only where RIFE runs: LOVECon with smoothing), a
mismatched one fails the job with the reason."""

from __future__ import annotations

from engine.video.io import probe
from tests.support.rife import write_rife_release

from .test_video_edit_api import _params, _run, _upload


def _release(tmp_path, edit=None):
    """A release folder holding flownet.pkl."""
    return write_rife_release(tmp_path / "rife46" / "flownet.pkl", edit=edit).parent


async def test_lovecon_with_rife_weights(api, sample_clip, tmp_path):
    up = await _upload(api, sample_clip)
    weights = _release(tmp_path)
    params = _params(
        up["id"], interpolator="rife", rife_weights=str(weights / "flownet.pkl"), window=4
    )
    res, p, _ = await _run(api, params, tmp_path)
    assert (p.frames, p.fps, p.width, p.height) == (4, 4.0, 64, 64)
    assert res["video"]["frames"] == 4 and "smoothing" in res["video"]["stages_s"]
    assert probe(res["path"]).frames == 4

    # the path must exist on the engine's machine: 422 at submit, naming the field
    for missing, words in (
        (str(tmp_path / "nowhere" / "flownet.pkl"), "does not exist"),
        (None, "needs its weights"),
        (str(tmp_path), "has no flownet.pkl"),
    ):
        status, err = await api.call(
            "POST",
            "/jobs",
            {
                "job": {
                    "kind": "video_edit",
                    "params": _params(up["id"], interpolator="rife", rife_weights=missing),
                }
            },
        )
        assert status == 422 and words in err["message"], err
        assert err["field"] == "job.params.rife_weights"

    # where RIFE never runs (no smoothing; ControlVideo) its weights are not asked for
    quiet = _params(up["id"], interpolator="rife", rife_weights=None, smoothing=False)
    res, p, _ = await _run(api, quiet, tmp_path)
    assert p.frames == 4 and "smoothing" not in res["video"]["stages_s"]
    _, cv = await api.call(
        "POST",
        "/jobs",
        {
            "job": {
                "kind": "video_edit",
                "params": _params(
                    up["id"], method="controlvideo", interpolator="rife", tuning_steps=5000
                ),
            }
        },
        expect=201,
    )
    await api.call("DELETE", f"/jobs/{cv['id']}", expect=200)
    assert (await api.wait(cv["id"], timeout=120))["state"] == "cancelled"

    # a state dict of another layout: the job fails (before denoising) and says what differs
    bad = _release(tmp_path, lambda sd: sd.pop("module.block3.lastconv.0.bias"))
    _, job = await api.call(
        "POST",
        "/jobs",
        {
            "job": {
                "kind": "video_edit",
                "params": _params(up["id"], interpolator="rife", rife_weights=str(bad)),
            }
        },
        expect=201,
    )
    done = await api.wait(job["id"], timeout=300)
    assert done["state"] == "failed"
    assert "not a RIFE 4.6 flownet" in done["message"]
    assert "block3.lastconv.0.bias" in done["message"]
    await api.call("GET", "/health", expect=200)
