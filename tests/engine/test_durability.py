"""Crashes at the worst moment, on the real engine process: killed between two images of a
batch, killed after a cancel was accepted. Nothing is lost, nothing runs twice."""

import asyncio
import json
import sqlite3
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from tests.engine.conftest import Api, next_event
from tests.support.engine_proc import EngineProcess

pytestmark = pytest.mark.slow


def _pixels(path) -> bytes:
    with Image.open(path) as im:
        return im.convert("RGB").tobytes()


def _as_if_killed_after_first_image(data_dir: Path, job_id: str) -> Path:
    """Rewrite the stopped engine's record of ``job_id`` into what a SIGKILL between the two
    images of its batch leaves: running, image 0 recorded, image 1 torn in its ``.part`` file."""
    db = sqlite3.connect(data_dir / "engine.sqlite")
    (data,) = db.execute("SELECT data FROM jobs WHERE id=?", (job_id,)).fetchone()
    job = json.loads(data)
    second = Path(job["results"][1]["path"])
    part = second.with_name(second.name + ".part")
    part.write_bytes(second.read_bytes()[:200])  # torn: write_png was killed mid-file
    second.unlink()
    job["state"], job["results"], job["finished_at"] = "running", job["results"][:1], None
    db.execute("UPDATE jobs SET state='running', data=? WHERE id=?", (json.dumps(job), job_id))
    db.commit()
    db.close()
    return part


async def test_a_batch_resumes_by_index_after_a_crash_between_its_images(tmp_path, tiny_models_dir):
    engine = EngineProcess(tmp_path / "data", tiny_models_dir, extra_args=["--model", "tiny-sd"])
    engine.data_dir.mkdir()
    engine.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(engine, session)
            job = await api.wait((await api.generate(seed=3, batch_size=2, steps=3))["id"])
        assert [r["index"] for r in job["results"]] == [0, 1]
        first, second = (Path(r["path"]) for r in job["results"])
        expected = _pixels(first), _pixels(second)
        engine.kill()
        part = _as_if_killed_after_first_image(engine.data_dir, job["id"])

        engine.start()
        async with aiohttp.ClientSession() as session:
            resumed = await Api(engine, session).wait(job["id"])
    finally:
        engine.stop()
    assert resumed["state"] == "done", resumed["message"]
    assert [r["index"] for r in resumed["results"]] == [0, 1]  # each once, none missing
    assert [r["seed"] for r in resumed["results"]] == [3, 4]
    assert not part.exists()
    assert (_pixels(first), _pixels(second)) == expected  # the same images, pixel for pixel


async def test_a_cancel_accepted_before_a_crash_is_not_undone(tmp_path, tiny_models_dir):
    engine = EngineProcess(tmp_path / "data", tiny_models_dir, extra_args=["--model", "tiny-sd"])
    engine.data_dir.mkdir()
    engine.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(engine, session)
            ws = await api.events()
            job = await api.generate(steps=1000, width=128, height=128)
            await next_event(ws, "progress", job["id"], timeout=120)
            await ws.close()
            _, answer = await api.call("DELETE", f"/jobs/{job['id']}", expect=200)
        engine.kill()  # at once: the worker has not reached its next step's cancel check
        engine.start()
        async with aiohttp.ClientSession() as session:
            api = Api(engine, session)
            await asyncio.sleep(1.0)  # a resumed job would be running by now
            _, after = await api.call("GET", f"/jobs/{job['id']}", expect=200)
    finally:
        engine.stop()
    assert answer["state"] in ("running", "cancelled")
    assert after["state"] == "cancelled", after
    assert after["results"] == []


@pytest.mark.timeout(1500)
def test_random_kills_lose_nothing_and_duplicate_nothing(tmp_path):
    """The short version of bench/durability.py: SIGKILLs at random moments and at image
    writes during batches; every job done once, every image once and valid, nothing left."""
    import subprocess
    import sys

    from tests.support.engine_proc import REPO

    out = tmp_path / "durability.json"
    run = subprocess.run(
        [
            sys.executable,
            "bench/durability.py",
            "--kills",
            "3",
            "--jobs",
            "2",
            "--seed",
            "1",
            "--json",
            str(out),
        ],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    result = json.loads(out.read_text())
    assert result["problems"] == []
    assert result["kills"] == 3 and result["integrity_check"] == "ok"
    assert result["images"] == 4 * result["jobs"]
