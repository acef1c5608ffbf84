import asyncio
import json

import aiohttp
import pytest

from tests.support.engine_proc import EngineProcess


@pytest.fixture
def engine(tmp_path, tiny_models_dir):
    proc = EngineProcess(tmp_path / "data", tiny_models_dir, extra_args=["--model", "tiny-sd"])
    proc.data_dir.mkdir()
    proc.start()
    yield proc
    proc.stop()


class Api:
    """A small aiohttp client for the tests (the app has its own)."""

    def __init__(self, engine: EngineProcess, session: aiohttp.ClientSession) -> None:
        self.engine, self.s = engine, session

    def url(self, path: str) -> str:
        return f"{self.engine.url}/v1{path}"

    async def call(self, method: str, path: str, body=None, expect: int | None = None):
        async with self.s.request(
            method, self.url(path), json=body, headers=self.engine.headers
        ) as r:
            data = await r.json() if r.content_type == "application/json" else await r.read()
            if expect is not None:
                assert r.status == expect, (r.status, data)
            return r.status, data

    async def generate(self, expect: int = 201, priority: int = 0, **params):
        params = {"width": 64, "height": 64, "steps": 4, **params}
        _, job = await self.call(
            "POST",
            "/jobs",
            {"job": {"kind": "generate", "params": params}, "priority": priority},
            expect,
        )
        return job

    async def wait(self, job_id: str, timeout: float = 120) -> dict:
        async def poll():
            while True:
                _, job = await self.call("GET", f"/jobs/{job_id}", expect=200)
                if job["state"] in ("done", "failed", "cancelled"):
                    return job
                await asyncio.sleep(0.1)

        return await asyncio.wait_for(poll(), timeout)

    async def events(self):
        ws = await self.s.ws_connect(f"{self.engine.url}/v1/events?token={self.engine.token}")
        return ws


async def next_event(ws, type_: str, job_id: str | None = None, timeout: float = 60) -> dict:
    async def read():
        while True:
            msg = json.loads((await ws.receive()).data)
            if msg["type"] == type_ and (
                job_id is None
                or msg.get("job_id") == job_id
                or msg.get("job", {}).get("id") == job_id
            ):
                return msg

    return await asyncio.wait_for(read(), timeout)


@pytest.fixture
async def api(engine):
    async with aiohttp.ClientSession() as session:
        yield Api(engine, session)
