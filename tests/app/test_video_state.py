"""The Video panel's state and its controller's event handling (no engine, no widgets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.controllers.video import VideoController
from app.state.jobs import JobsState
from app.state.video import METHODS, VideoFrames, VideoState, strip_positions
from engine.protocol import (
    GenerateJob,
    GenerateParams,
    Job,
    JobFinished,
    JobProgress,
    JobQueued,
    JobState,
    ResultImage,
    UploadInfo,
    VideoEditJob,
    VideoEditParams,
    VideoProbe,
    VideoResult,
    utcnow,
)

from .bare_session import bare_library, bare_session


def upload(frames=24, fps=8.0, width=64, height=64, audio=False) -> UploadInfo:
    probe = VideoProbe(
        frames=frames,
        fps=fps,
        duration_s=frames / fps,
        width=width,
        height=height,
        pixel_format="yuv420p",
        codec="h264",
        has_audio=audio,
        variable_frame_rate=False,
    )
    return UploadInfo(
        id="abc123",
        name="clip.mp4",
        kind="video",
        size_bytes=1000,
        path="/engine/uploads/abc123/clip.mp4",
        created_at=utcnow(),
        width=width,
        height=height,
        probe=probe,
    )


def ready_state() -> VideoState:
    s = VideoState()
    s.set_source(upload(audio=True), "/here/clip.mp4")
    s.source_prompt = "t-rex, twemoji style, on a white background"
    s.target_prompt = "t-rex, twemoji style, on a blue background"
    s.width = s.height = 64
    return s


def test_defaults_are_the_engines():
    s, p = VideoState(), VideoEditParams(source="x", target_prompt="y")
    assert (s.steps, s.cfg_scale, s.seed, s.window, s.tuning_steps, s.learning_rate) == (
        p.steps,
        p.cfg_scale,
        p.seed,
        p.window,
        p.tuning_steps,
        p.learning_rate,
    )
    assert (s.method, s.edit_type, s.fit, s.smoothing) == (
        p.method,
        p.edit_type,
        p.fit,
        p.smoothing,
    )
    assert (s.control_type, s.low_threshold, s.high_threshold, s.control_scale) == (
        p.control.type,
        p.control.low_threshold,
        p.control.high_threshold,
        p.control.scale,
    )
    assert set(METHODS) == {"lovecon", "controlvideo"}
    assert all(len(text) > 30 for _, text in METHODS.values())


def test_source_summary_and_selection():
    s = ready_state()
    assert s.source_summary() == "clip.mp4 · 24 frames · 8 fps · 64×64 · 3.0 s · audio"
    assert s.selected() == list(range(24))
    s.start, s.end, s.stride = 2, 11, 3
    assert s.selected() == [2, 5, 8]
    assert s.output_fps == pytest.approx(8 / 3)
    assert s.selection_summary() == "3 frames → 1.1 s at 2.67 fps"
    s.end = 0  # to the end
    assert s.selected()[-1] == 23


def test_problems_name_each_field():
    s = VideoState()
    assert set(s.problems()) == {"source", "target_prompt"}
    s = ready_state()
    assert s.problems() == {}
    s.start = 30
    assert "only 24 frames" in s.problems()["start"]
    s.start, s.end = 5, 3
    assert "after the first" in s.problems()["end"]
    s.end = 0
    s.edit_phrase = "giraffe"
    assert "not in the source prompt" in s.problems()["edit_phrase"]
    s.method = "controlvideo"  # ControlVideo has no mask words
    assert "edit_phrase" not in s.problems()
    s.edit_phrase = "t-rex"
    s.width = 60
    assert "multiple of 8" in s.problems()["width"]
    s.width = 64
    s.low_threshold = 300
    assert "low_threshold" in s.problems()
    s.low_threshold = 100
    s.control_type = "depth"
    assert "annotator" in s.problems()
    s.annotator = "/weights/depth"
    s.target_prompt = "  "
    assert list(s.problems()) == ["target_prompt"]
    with pytest.raises(ValueError, match="Say what the video should become"):
        s.to_params()


def test_to_params_carries_everything():
    s = ready_state()
    s.start, s.end, s.stride = 0, 8, 2
    s.edit_phrase, s.edit_type, s.method = "t-rex", "background", "controlvideo"
    s.steps, s.cfg_scale, s.tuning_steps, s.controlnet = 3, 7.5, 2, "my-canny"
    p = s.to_params("sfumato-tiny")
    assert p.model == "sfumato-tiny" and p.source == "abc123"
    assert (p.frames.start, p.frames.end, p.frames.stride) == (0, 8, 2)
    assert (p.width, p.height, p.method, p.edit_type, p.steps, p.tuning_steps) == (
        64,
        64,
        "controlvideo",
        "background",
        3,
        2,
    )
    assert p.control.controlnet == "my-canny" and p.control.annotator is None
    # and the wire accepts it
    VideoEditJob.model_validate_json(VideoEditJob(params=p).model_dump_json())
    req = s.preview_request()
    assert req.count == 4 and req.source == "abc123" and req.frames.stride == 2
    assert req.map_count == 8  # maps only for the strip: HED/depth/pose cost seconds a frame


def test_result_request_asks_for_frames_not_maps():
    s = ready_state()
    s.control_type, s.annotator = "depth", "/weights/depth"
    assert s.result_request() is None  # no result yet
    s.result_ready(
        Path("/tmp/edit.mp4"),
        {"engine_path": "/engine/out/edit.mp4", "frames": 40, "width": 96, "height": 64},
    )
    req = s.result_request()
    assert (req.source, req.width, req.height, req.count) == ("/engine/out/edit.mp4", 96, 64, 32)
    assert req.map_count == 0  # the player shows frames only; no map is drawn for them


def test_rife_needs_its_weights_only_where_it_smooths():
    s = ready_state()
    assert (s.interpolator, s.rife_weights) == ("flow", "")
    assert s.to_params().interpolator == "flow" and s.to_params().rife_weights is None
    s.interpolator = "rife"
    assert "choose its weights file" in s.problems()["rife_weights"]
    with pytest.raises(ValueError, match="RIFE smoothing"):
        s.to_params()
    s.rife_weights = "   "
    assert "rife_weights" in s.problems()
    s.rife_weights = " /models/rife46/flownet.pkl "
    assert s.problems() == {}
    p = s.to_params()
    assert (p.interpolator, p.rife_weights) == ("rife", "/models/rife46/flownet.pkl")
    VideoEditJob.model_validate_json(VideoEditJob(params=p).model_dump_json())
    # no smoothing, or ControlVideo (which does not smooth): RIFE is neither asked for nor sent
    for change in ({"smoothing": False}, {"method": "controlvideo"}):
        t = ready_state()
        t.interpolator = "rife"
        for k, v in change.items():
            setattr(t, k, v)
        assert "rife_weights" not in t.problems()
        assert (t.to_params().interpolator, t.to_params().rife_weights) == ("flow", None)


def test_fit_size_keeps_the_aspect_ratio():
    s = VideoState()
    s.set_source(upload(width=1920, height=1080))
    s.fit_size(512)
    assert (s.width, s.height) == (912, 512)
    s.set_source(upload(width=720, height=1280))  # a phone's portrait clip
    s.fit_size(512)
    assert (s.width, s.height) == (512, 912)
    s.set_source(upload(width=64, height=64))
    s.fit_size(64)
    assert (s.width, s.height) == (64, 64)


def test_progress_text_and_lifecycle():
    s = ready_state()
    s.job_submitted("j1")
    assert s.busy and s.progress_text() == "Waiting in the queue…"
    s.progress("window 2 of 3", 14, 40, 32.4)
    assert s.progress_text() == "Window 2 of 3 — step 14 of 40 — about 0:32 left"
    s.progress("tuning", 0, 80, None)
    assert s.progress_text() == "Tuning — step 0 of 80"
    s.finished("failed", "No ControlNet for sfumato-tiny")
    assert not s.busy and s.message == ("error", "No ControlNet for sfumato-tiny")
    assert strip_positions(24) == [0, 3, 7, 10, 13, 16, 20, 23]
    assert strip_positions(3) == [0, 1, 2]


def test_player_rate_matches_the_clip():
    s = ready_state()
    s.stride = 2  # 12 frames at 4 fps
    s.preview = VideoFrames(indices=list(range(0, 24, 2)), frames=[b"x"] * 12, maps=[b"m"] * 12)
    assert s.player_fps() == pytest.approx(4.0)
    s.preview = VideoFrames(indices=[0, 11, 22], frames=[b"x"] * 3, maps=[b"m"] * 3)
    assert s.player_fps() == pytest.approx(1.0)  # 3 shown frames over 3 s


def _job(job_id: str, kind: str, state=JobState.running, results=()) -> Job:
    spec = (
        VideoEditJob(params=VideoEditParams(source="abc123", target_prompt="blue"))
        if kind == "video_edit"
        else GenerateJob(params=GenerateParams(prompt="x"))
    )
    return Job(
        id=job_id, kind=kind, state=state, spec=spec, created_at=utcnow(), results=list(results)
    )


def _controller(state: VideoState, jobs: JobsState, tmp_path: Path):
    spawned = []
    session = bare_session(tmp_path, jobs)
    session.spawn = spawned.append  # type: ignore[method-assign]  # keep, do not run
    ctl = VideoController(state, session, bare_library(session))
    return ctl, spawned


def test_controller_takes_only_video_jobs_events(tmp_path):
    s, jobs = ready_state(), JobsState()
    ctl, spawned = _controller(s, jobs, tmp_path)
    session = ctl.session
    others: list = []
    session.claim(None, others.append)  # what the canvas would be sent
    with pytest.raises(ValueError, match="claimed twice"):
        session.claim(("video_edit",), others.append)
    gen = _job("g1", "generate")
    session.handle_event(JobQueued(job=gen))
    session.handle_event(JobProgress(job_id="g1", step=1, total=2))
    assert len(others) == 2 and s.step == 0

    vid = _job("v1", "video_edit")
    session.handle_event(JobQueued(job=vid))
    assert jobs.get("v1").title == "Video edit (LOVECon): blue"
    s.job_submitted("v1")
    session.handle_event(
        JobProgress(job_id="v1", step=3, total=9, eta_s=5.0, stage="inversion (window 1 of 2)")
    )
    assert (s.stage, s.step, s.total, s.job_state) == ("inversion (window 1 of 2)", 3, 9, "running")
    # another video job (an earlier session's) is the Queue's, not the panel's
    other = _job("v0", "video_edit")
    session.handle_event(JobQueued(job=other))
    session.handle_event(JobProgress(job_id="v0", step=1, total=2, stage="tuning"))
    assert s.stage == "inversion (window 1 of 2)"

    failed = _job("v1", "video_edit", JobState.failed).model_copy(
        update={"message": "No ControlNet found for sfumato-tiny"}
    )
    session.handle_event(JobFinished(job=failed))
    assert s.job_state == "failed" and "No ControlNet" in s.message[1]

    s.job_submitted("v2")
    res = ResultImage(
        name="v2-video.mp4",
        path=str(tmp_path / "v2-video.mp4"),
        index=0,
        seed=0,
        width=64,
        height=64,
        role="video",
        video=VideoResult(frames=4, fps=4.0, duration_s=1.0, method="lovecon"),
    )
    session.handle_event(JobFinished(job=_job("v2", "video_edit", JobState.done, [res])))
    assert len(spawned) == 1  # fetching the MP4 and its frames
    spawned[0].close()
    assert len(others) == 2  # no video job's event reached the canvas


def test_export(tmp_path):
    s = ready_state()
    ctl, _ = _controller(s, JobsState(), tmp_path)
    assert ctl.export(tmp_path / "x.mp4") is None and s.message[0] == "warning"
    mp4 = tmp_path / "v-video.mp4"
    mp4.write_bytes(b"mp4 bytes")
    s.result_ready(mp4, {"frames": 4})
    out = ctl.export(tmp_path / "mine")
    assert out == tmp_path / "mine.mp4" and out.read_bytes() == b"mp4 bytes"
    assert ctl.export(tmp_path / "missing" / "x.mp4") is None and s.message[0] == "error"


def test_open_refuses_what_is_not_a_video(tmp_path):
    s = VideoState()
    ctl, spawned = _controller(s, JobsState(), tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("hi")
    assert ctl.open_video(notes) is None and "notes.txt is not a video" in s.message[1]
    assert ctl.open_video(tmp_path / "gone.mp4") is None and "not a file" in s.message[1]
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    assert ctl.open_video(clip) is None and "not connected" in s.message[1]  # no engine
    assert spawned == []


def test_queue_card_of_a_finished_edit_counts_videos(qapp, tmp_path):
    from app.ui.queue_dock import QueueDockWidget

    jobs = JobsState()
    dock = QueueDockWidget(jobs)
    res = ResultImage(
        name="v3-video.mp4",
        path=str(tmp_path / "v3-video.mp4"),
        index=0,
        seed=0,
        width=64,
        height=64,
        role="video",
        video=VideoResult(frames=4, fps=4.0, duration_s=1.0, method="lovecon"),
    )
    jobs.upsert(_job("v3", "video_edit", JobState.done, [res]))
    assert dock.card("v3").eta.text().startswith("1 video")


async def test_damaged_frames_and_result_notes_reach_the_panel(tmp_path):
    """The engine names a torn clip's damaged frames in the preview and notes on the result
    (audio silenced, frames damaged): the panel warns, and the edit stays possible."""
    from engine.protocol import ControlPreview

    class Client:
        async def control_preview(self, request):
            return ControlPreview(
                width=64,
                height=64,
                frame_indices=[0, 23],
                maps_png_b64=[],
                frames_png_b64=[],
                damaged_frames=[17, 18, 19, 30],
            )

    s = ready_state()
    s.target_prompt = "a blue t-rex"
    ctl, _ = _controller(s, JobsState(), tmp_path)
    ctl.session.client = Client()  # type: ignore[assignment]
    await ctl._preview(Client())
    level, text = s.message
    assert level == "warning" and "Frames 17–19, 30 of this clip are damaged" in text
    assert "Edit anyway" in text and not s.problems()  # going on is allowed

    mp4 = tmp_path / "v3-video.mp4"
    mp4.write_bytes(b"x")
    s.job_submitted("v3")
    res = ResultImage(
        name=mp4.name,
        path=str(mp4),
        index=0,
        seed=0,
        width=64,
        height=64,
        role="video",
        video=VideoResult(
            frames=4,
            fps=4.0,
            duration_s=1.0,
            method="lovecon",
            has_audio=True,
            notes=[("The source's audio had 1 damaged packet (0.035 s): silent there.")],
        ),
    )
    await ctl._fetch_result("v3", res)
    assert s.job_state == "done" and s.message == (
        "warning",
        "The source's audio had 1 damaged packet (0.035 s): silent there.",
    )


def test_an_edit_with_nothing_to_mask_is_flagged_before_it_is_sent():
    """LOVECon's attribute and background edits mask words of the source prompt; with no
    source prompt and no edit phrase the job used to fail after loading the model."""
    from engine.video_protocol import VideoEditParams, missing_edit_phrase

    s = ready_state()
    s.source_prompt, s.edit_phrase, s.edit_type = "", "", "attribute"
    s.target_prompt = "a blue square"
    assert "attribute edit masks the object" in s.problems()["edit_phrase"]
    s.edit_type = "style"
    assert "edit_phrase" not in s.problems()
    s.edit_type, s.source_prompt = "attribute", "a red square"  # "red" is dropped: the mask
    assert "edit_phrase" not in s.problems()
    p = VideoEditParams(source="x", target_prompt="cows on snow", edit_type="background")
    assert "background edit" in missing_edit_phrase(p)
