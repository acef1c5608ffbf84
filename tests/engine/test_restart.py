"""A killed engine loses no queued job and no saved output."""

from pathlib import Path

import aiohttp
import pytest

from tests.engine.conftest import Api, next_event
from tests.support.engine_proc import EngineProcess

pytestmark = pytest.mark.slow


async def test_jobs_survive_a_crash_and_run_after_restart(tmp_path, tiny_models_dir):
    engine = EngineProcess(tmp_path / "data", tiny_models_dir, extra_args=["--model", "tiny-sd"])
    engine.data_dir.mkdir()
    engine.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(engine, session)
            first = await api.wait((await api.generate(seed=1))["id"])
            assert first["state"] == "done"
            ws = await api.events()
            # batch_count 3: the crash comes after the first image of the job is saved
            long = await api.generate(seed=5, steps=40, batch_count=3)
            waiting = await api.generate(seed=9)
            await next_event(ws, "result", long["id"], timeout=120)
            await ws.close()
        engine.kill()

        engine.start()
        async with aiohttp.ClientSession() as session:
            api = Api(engine, session)
            resumed = await api.wait(long["id"], timeout=180)
            after = await api.wait(waiting["id"], timeout=60)
            _, old = await api.call("GET", f"/jobs/{first['id']}", expect=200)
    finally:
        engine.stop()

    assert resumed["state"] == "done" and after["state"] == "done"
    assert [r["seed"] for r in resumed["results"]] == [5, 6, 7]
    assert [r["index"] for r in resumed["results"]] == [0, 1, 2]
    assert resumed["finished_at"] < after["started_at"]  # the interrupted job runs first
    for job in (old, resumed, after):
        for result in job["results"]:
            assert Path(result["path"]).is_file()
