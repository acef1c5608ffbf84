"""Issue 14, item 7: every number a person reads twice reads the same in both places.

Each test names the disagreement it guards: a preview at step 13 beside a status bar at 12;
"Image 1/4" while four render together; "Image 2/5" for a 4-cell grid; a 36-frame selection
with a "1/32" scrubber; a clip at 30 fps whose result says 30.02 fps.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from app.main import create_window, parse_args
from app.state.canvas import CanvasState
from app.state.grid import CanvasGrid
from app.state.jobs import JobItem, JobsState, step_text
from app.state.video import PLAYER_FRAMES, VideoFrames, VideoState, fps_text
from engine.jobs import JobContext
from engine.protocol import (
    GenerateJob,
    GenerateParams,
    Job,
    JobPreview,
    JobProgress,
    JobQueued,
    JobStarted,
    JobState,
    ResultImage,
    SamplerGridJob,
    SamplerGridParams,
    utcnow,
)
from tests.app.test_video_state import upload


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (90, 60, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _job(job_id="a", *, batch_size=1, batch_count=1, steps=25, results=0) -> Job:
    params = GenerateParams(
        prompt="p", width=64, height=64, steps=steps, batch_size=batch_size, batch_count=batch_count
    )
    res = [
        ResultImage(name=f"{i}.png", path=f"/x/{i}.png", index=i, seed=i, width=64, height=64)
        for i in range(results)
    ]
    return Job(
        id=job_id,
        kind="generate",
        state=JobState.running,
        created_at=utcnow(),
        spec=GenerateJob(params=params),
        results=res,
    )


def _grid_job(job_id="g") -> Job:
    grid = SamplerGridParams(
        base=GenerateParams(prompt="p", seed=3, width=64, height=64),
        samplers=["Euler", "DDIM"],
        steps=[2, 3],
    )
    return Job(
        id=job_id,
        kind="sampler_grid",
        state=JobState.running,
        created_at=utcnow(),
        spec=SamplerGridJob(params=grid),
    )


# ----------------------------------------------------------------- preview step vs progress
class _Queue:
    """Just what a JobContext publishes to (the real JobQueue needs a store and a bus)."""

    output_dir = Path("/nonexistent")
    registry = SimpleNamespace(folders=[])  # where a job's prompt finds LoRAs (none here)

    def __init__(self) -> None:
        self.events: list = []

    def publish(self, event) -> None:
        self.events.append(event)


def test_a_preview_goes_out_with_the_progress_of_its_step():
    queue = _Queue()
    ctx = JobContext(queue, _job())
    ctx.begin(25)
    ctx.PREVIEW_INTERVAL_S = 0.0  # a preview due at every step…
    ctx.PROGRESS_INTERVAL_S = 3600.0  # …while progress would be throttled
    for step in range(1, 14):
        if ctx.progress(step):
            ctx.preview(step, 0, ("", 8, 8))
    progress = [e.step for e in queue.events if isinstance(e, JobProgress)]
    previews = [e.step for e in queue.events if isinstance(e, JobPreview)]
    assert previews[-1] == 13
    for step in previews:  # each preview's step was announced as progress before it
        assert step in progress


def test_between_previews_the_progress_bar_does_not_run_ahead(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("engine.jobs.time.monotonic", lambda: clock[0])
    queue = _Queue()
    ctx = JobContext(queue, _job())
    ctx.begin(80)
    for step in range(1, 80):
        clock[0] += 0.07  # a step takes 70 ms: previews every 4th step
        if ctx.progress(step):
            ctx.preview(step, 0, ("", 8, 8))
    events = queue.events
    progress = [i for i, e in enumerate(events) if isinstance(e, JobProgress) and e.step > 0]
    assert len(progress) > 10
    for i in progress:  # every step the bar shows is the step of the preview that follows
        after = events[i + 1] if i + 1 < len(events) else None
        assert isinstance(after, JobPreview) and after.step == events[i].step, (i, events[i])


def test_status_bar_and_canvas_caption_say_the_same_step(qtbot, tmp_path: Path):
    controller, win = create_window(parse_args(["--data-dir", str(tmp_path), "--no-engine"]))
    qtbot.addWidget(win)
    win.show()
    png = base64.b64encode(_png()).decode()
    controller.handle_event(JobQueued(job=_job(steps=25)))
    controller.handle_event(JobStarted(job_id="a"))
    controller.handle_event(JobProgress(job_id="a", step=13, total=25))
    controller.handle_event(
        JobPreview(job_id="a", step=13, index=0, width=8, height=8, png_b64=png)
    )
    assert win.status.job_label.text().startswith("Step 13/25")
    assert win.canvas._caption_text == "Preview · step 13/25"
    controller.history.index.close()


# ----------------------------------------------------------------- which images
@pytest.mark.parametrize(
    ("size", "count", "results", "text"),
    [
        (1, 1, 0, ""),
        (4, 1, 0, "4 images"),  # a batch renders together: not "Image 1/4"
        (1, 3, 1, "Image 2 of 3"),  # one image at a time
        (4, 2, 0, "Images 1–4 of 8"),
        (4, 2, 4, "Images 5–8 of 8"),
        (4, 2, 8, "Images 5–8 of 8"),  # the last result arrived, the job not yet finished
    ],
)
def test_images_text_says_what_renders_now(size, count, results, text):
    item = JobItem.from_job(_job(batch_size=size, batch_count=count, results=results))
    assert item.images_text() == text


def test_a_four_cell_grid_counts_four_cells(qtbot, tmp_path: Path):
    item = JobItem.from_job(_grid_job())
    assert item.images_text() == "Cell 1 of 4"  # not "Image 1/5" (the sheet is no cell)
    jobs = JobsState()
    jobs.apply(JobQueued(job=_grid_job()))
    jobs.apply(JobStarted(job_id="g"))
    jobs.apply(JobProgress(job_id="g", step=3, total=10))
    from app.state.engine import EngineInfo
    from app.ui.status_bar import StatusBar

    bar = StatusBar(EngineInfo(), jobs)
    qtbot.addWidget(bar)
    bar._update_jobs()
    assert bar.job_label.text().startswith("Cell 1 of 4 · Step 3/10")


def test_a_grid_cell_preview_counts_the_cells_own_steps(qapp):
    grid = CanvasGrid("g", _grid_job().spec.params)
    canvas = CanvasState()
    canvas.follow_grid(grid)
    # cells row-major: (Euler, 2), (Euler, 3), (DDIM, 2), (DDIM, 3); the engine counts on
    assert grid.cell_step(0, 1) == (1, 2)
    assert grid.cell_step(1, 2 + 2) == (2, 3)
    assert grid.cell_step(3, 2 + 3 + 2 + 1) == (1, 3)
    assert canvas.set_grid_preview("g", 3, _png(), 8)
    image = grid.slot(1, 1).image
    assert (image.step, image.total) == (1, 3)
    assert step_text(image.step, image.total) == "Step 1/3"


# ----------------------------------------------------------------- video frames and rates
def test_the_scrubber_counts_the_selected_frames_not_the_shown_ones(qapp):
    s = VideoState()
    s.set_source(upload(frames=40, fps=30.0))
    s.end = 36
    selected = s.selected()
    assert len(selected) == 36
    shown = [selected[round(i * 35 / (PLAYER_FRAMES - 1))] for i in range(PLAYER_FRAMES)]
    s.preview = VideoFrames(indices=shown, frames=[b""] * PLAYER_FRAMES, maps=[b""] * PLAYER_FRAMES)
    assert "36 frames" in s.selection_summary()
    assert s.frame_text(0) == "1 / 36 · #0"
    assert s.frame_text(PLAYER_FRAMES - 1) == "36 / 36 · #35"
    assert all(t.split(" · ")[0].endswith("/ 36") for t in map(s.frame_text, range(32)))


def test_one_frame_rate_wording_for_source_selection_result_and_queue(qapp):
    assert fps_text(30.0) == "30" and fps_text(30.02) == "30.02" and fps_text(29.97003) == "29.97"
    s = VideoState()
    s.set_source(upload(frames=30, fps=30.02))
    assert "30.02 fps" in s.source_summary()
    assert "30.02 fps" in s.selection_summary()
    from engine.video_protocol import VideoResult

    item = JobItem(
        id="v",
        state=JobState.done,
        params=None,
        created_at=utcnow(),
        label="Video edit (LOVECon): x",
        results=[
            ResultImage(
                name="v.mp4",
                path="/x/v.mp4",
                index=0,
                seed=0,
                width=64,
                height=64,
                role="video",
                video=VideoResult(frames=30, fps=30.02, duration_s=1.0),
            )
        ],
    )
    assert item.summary() == "30 frames · 30.02 fps"
