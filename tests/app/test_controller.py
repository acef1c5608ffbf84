"""The controller without a window: events → state, actions → requests, errors → fields."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from app.controller import AppController
from app.paths import AppPaths
from app.session import LaunchOptions
from app.state import Connection, Settings
from engine.protocol import (
    GenerateJob,
    GenerateParams,
    Job,
    JobFinished,
    JobPreview,
    JobQueued,
    JobResult,
    JobStarted,
    JobState,
    ResultImage,
    utcnow,
)

from .test_client import TOKEN, FakeApi


def png_bytes(color=(255, 0, 0), size=(64, 64)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def controller(qapp, tmp_path: Path):
    paths = AppPaths(tmp_path / "data")
    c = AppController(paths, Settings(tmp_path / "settings.ini"), LaunchOptions(spawn_engine=False))
    notices: list[tuple[str, str]] = []
    c.notice.connect(lambda level, text: notices.append((level, text)))
    c.notices = notices  # type: ignore[attr-defined]
    yield c
    c.history.index.close()


async def settle(c: AppController) -> None:
    for _ in range(500):
        if not c.session.busy:
            return
        await asyncio.sleep(0.02)


def make_job(job_id: str = "job1", state=JobState.queued, **kw) -> Job:
    params = GenerateParams(prompt="harbour", width=64, height=64, steps=4, seed=9, **kw)
    return Job(
        id=job_id,
        kind="generate",
        state=state,
        spec=GenerateJob(params=params),
        created_at=utcnow(),
    )


async def test_result_on_local_disk_is_indexed_and_shown(controller: AppController):
    c = controller
    out = c.output_dir / "2024-01-01"
    out.mkdir(parents=True)
    (out / "job1-000.png").write_bytes(png_bytes())
    c.handle_event(JobQueued(job=make_job()))
    c.handle_event(JobStarted(job_id="job1"))
    assert c.canvas.job_id == "job1"
    preview = base64.b64encode(png_bytes((0, 0, 255), (8, 8))).decode()
    c.handle_event(JobPreview(job_id="job1", step=2, width=8, height=8, png_b64=preview))
    assert c.canvas.current_image is not None and c.canvas.current_image.preview
    image = ResultImage(
        name="job1-000.png", path=str(out / "job1-000.png"), index=0, seed=9, width=64, height=64
    )
    c.handle_event(JobResult(job_id="job1", image=image))
    await settle(c)
    shown = c.canvas.current_image
    assert shown is not None and shown.ready and shown.path == out / "job1-000.png"
    assert [e.prompt for e in c.history.entries] == ["harbour"]
    entry = c.history.entries[0]
    assert entry.seed == 9 and entry.job_id == "job1"
    # the finished event repeats the result: not indexed twice
    c.handle_event(
        JobFinished(job=make_job(state=JobState.done).model_copy(update={"results": [image]}))
    )
    await settle(c)
    assert len(c.history.index) == 1


async def test_failed_job_is_reported(controller: AppController):
    c = controller
    c.handle_event(JobQueued(job=make_job()))
    failed = make_job(state=JobState.failed).model_copy(update={"message": "Out of memory."})
    c.handle_event(JobFinished(job=failed))
    assert ("error", "Job failed: Out of memory.") in c.notices  # type: ignore[attr-defined]
    item = c.jobs.get("job1")
    assert item is not None and item.message == "Out of memory."


def test_generate_validates_locally_and_waits_for_the_engine(controller: AppController):
    c = controller
    c.generation.width = 60
    c.generate_jobs.generate()
    assert "multiple of 8" in c.generation.error("width")
    assert c.notices[-1][0] == "error"  # type: ignore[attr-defined]
    c.generation.width = 64
    c.generate_jobs.generate()
    assert len(c.generate_jobs.pending) == 1  # sent once the engine is ready
    c.generate_jobs.generate()  # never blocked: a second press queues a second job
    assert len(c.generate_jobs.pending) == 2


async def test_drop_restores_or_explains(
    controller: AppController, a1111_png: Path, tmp_path: Path
):
    c = controller
    c.generation.prompt = "keep me"
    bad = tmp_path / "notes.txt"
    bad.write_text("x")
    assert not c.generate_jobs.restore_from_file(bad)
    assert c.generation.prompt == "keep me"
    assert "not an image" in c.notices[-1][1]  # type: ignore[attr-defined]
    assert c.generate_jobs.restore_from_file(a1111_png)
    assert c.generation.prompt == "a castle on a hill, golden hour"
    assert (c.generation.width, c.generation.height, c.generation.seed) == (512, 768, 12345)
    assert c.generation.model is None  # an A1111 model name is not forced on the engine
    await settle(c)
    assert c.canvas.current_image is not None and c.canvas.current_image.path == a1111_png


def test_last_params_survive_a_restart(qapp, tmp_path: Path):
    paths = AppPaths(tmp_path / "data")
    settings = Settings(tmp_path / "s.ini")
    c = AppController(paths, settings, LaunchOptions(spawn_engine=False))
    c.generation.prompt = "remember me"
    c.generation.steps = 7
    c.save_last_params()
    c.history.index.close()
    c2 = AppController(paths, Settings(tmp_path / "s.ini"), LaunchOptions(spawn_engine=False))
    assert (c2.generation.prompt, c2.generation.steps) == ("remember me", 7)
    c2.history.index.close()


@pytest.fixture
async def api_url():
    api = FakeApi()
    api.drop_first_ws = False
    srv = TestServer(api.app(), host="127.0.0.1")
    await srv.start_server()
    yield str(srv.make_url("")).rstrip("/")
    await srv.close()


async def test_remote_engine_errors_land_on_fields_and_results_download(
    controller: AppController, api_url: str
):
    c = controller
    await c.session.attach(api_url, TOKEN, remote=True)
    for _ in range(500):
        if c.engine.samplers:
            break
        await asyncio.sleep(0.02)
    assert c.engine.connection is Connection.ready and c.engine.remote
    assert [m.id for m in c.engine.models] == ["tiny"]
    c.generation.sampler = "Bogus"
    c.generate_jobs.generate()
    await settle(c)
    assert c.generation.errors == {"sampler": "Unknown sampler 'Bogus'"}
    assert c.notices[-1] == ("error", "Sampler: Unknown sampler 'Bogus'")  # type: ignore
    c.generation.sampler = "Euler a"
    c.generate_jobs.generate()
    await settle(c)
    assert c.jobs.get("new") is not None
    # A remote result is downloaded into the local outputs folder.
    image = ResultImage(
        name="new-000.png", path="/on/the/gpu/box/new-000.png", index=0, seed=3, width=64, height=64
    )
    c.handle_event(JobResult(job_id="new", image=image))
    await settle(c)
    saved = next(c.output_dir.glob("*/new-000.png"))
    assert saved.read_bytes() == b"\x89PNG..."
    assert c.history.entries[0].path == saved.resolve()
    await c.shutdown()


async def test_wrong_token_is_reported(controller: AppController, api_url: str):
    c = controller
    await c.session.attach(api_url, "wrong", remote=True)
    for _ in range(500):
        if c.engine.connection is Connection.disconnected:
            break
        await asyncio.sleep(0.02)
    assert c.engine.connection is Connection.disconnected
    assert "refused the token" in c.notices[-1][1]  # type: ignore[attr-defined]
    await c.shutdown()


def test_size_follows_the_model_until_the_user_picks_one(controller: AppController):
    from engine.protocol import Health, ModelInfo

    c = controller
    c.engine.models = [
        ModelInfo(id="sd15", name="SD 1.5", format="single_file", path="/a", architecture="sd1"),
        ModelInfo(id="xl", name="SDXL", format="single_file", path="/b", architecture="sdxl"),
    ]

    def load(model_id: str) -> None:
        c.engine.update_health(
            Health(version="1", state="ready", device="cpu", dtype="float32", model=model_id)
        )

    load("sd15")
    assert (c.generation.width, c.generation.height) == (512, 512)
    load("xl")
    assert (c.generation.width, c.generation.height) == (1024, 1024)
    c.generation.set_size(832, 1216)  # the user's choice sticks
    load("sd15")
    assert (c.generation.width, c.generation.height) == (832, 1216)


async def test_open_a_finished_job_shows_its_batch(controller: AppController):
    c = controller
    out = c.output_dir / "day"
    out.mkdir(parents=True)
    for i in range(3):
        path = out / f"jobx-{i:03d}.png"
        path.write_bytes(png_bytes((i * 80, 0, 0)))
        c.history.index.add(path, make_job().spec.params, seed=i, job_id="jobx")
    c.results.open_job("jobx")
    await settle(c)
    assert [im.seed for im in c.canvas.images] == [0, 1, 2]
    assert all(im.ready for im in c.canvas.images)
