"""The client against a small aiohttp server that answers like the engine's /v1 API."""

from __future__ import annotations

import json
from contextlib import aclosing
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.client import (
    ApiError,
    AuthError,
    EngineClient,
    EngineUnavailable,
    NotFound,
    StreamConnected,
    StreamLost,
)
from engine.protocol import (
    EngineStatus,
    GenerateJob,
    GenerateParams,
    Health,
    Job,
    JobProgress,
    JobState,
)

TOKEN = "s3cret"
HEALTH = Health(version="0.1", state="ready", device="cpu", dtype="float32")


def make_job(job_id: str = "j1", **kw) -> Job:
    return Job(
        id=job_id,
        kind="generate",
        state=JobState.queued,
        spec=GenerateJob(params=GenerateParams(**kw)),
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
    )


def answer(data: object, status: int = 200):
    async def handler(_request: web.Request) -> web.Response:
        return web.json_response(data, status=status)

    return handler


class FakeApi:
    """Records requests; answers like the engine (this is the client's unit test)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict | None, str]] = []
        self.ws_connects = 0
        self.drop_first_ws = True

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.auth])
        r = app.router
        r.add_get("/v1/health", answer(HEALTH.model_dump(mode="json")))
        r.add_get("/v1/samplers", answer([{"name": "Euler a", "description": "ancestral"}]))
        r.add_get(
            "/v1/models",
            answer(
                [
                    {
                        "id": "tiny",
                        "name": "Tiny",
                        "format": "diffusers",
                        "path": "/m",
                        "embedded": True,
                    }
                ]
            ),
        )
        r.add_post("/v1/jobs", self.submit)
        r.add_get("/v1/jobs", answer([]))
        r.add_delete("/v1/jobs/{id}", self.cancel)
        r.add_post("/v1/jobs/{id}/move", self.move)
        r.add_get("/v1/jobs/{id}/files/{name}", self.file)
        r.add_get("/v1/jobs/{id}", answer({"message": "No job nope"}, 404))
        r.add_get(
            "/v1/legacy",
            answer(
                {"detail": [{"loc": ["body", "job", "params", "steps"], "msg": "too many"}]}, 422
            ),
        )
        r.add_get("/v1/events", self.events)
        return app

    @web.middleware
    async def auth(self, request: web.Request, handler):
        body = await request.text() if request.can_read_body else ""
        self.requests.append(
            (
                request.method,
                request.path,
                json.loads(body) if body else None,
                request.headers.get("Authorization", ""),
            )
        )
        token_ok = (
            request.headers.get("Authorization") == f"Bearer {TOKEN}"
            or request.query.get("token") == TOKEN
        )
        if not token_ok:
            return web.json_response({"message": "Missing or wrong token"}, status=401)
        return await handler(request)

    async def submit(self, request: web.Request) -> web.Response:
        body = await request.json()
        params = body["job"]["params"]
        if params["sampler"] == "Bogus":
            return web.json_response(
                {"message": "Unknown sampler 'Bogus'", "field": "job.params.sampler"}, status=422
            )
        if params["width"] % 8:
            return web.json_response(
                {
                    "message": "Width: must be a multiple of 8 (try 64 or 72)",
                    "field": "job.params.width",
                    "errors": [
                        {"field": "job.params.width", "message": "must be a multiple of 8"},
                        {"field": "job.params.height", "message": "too big"},
                    ],
                },
                status=422,
            )
        job = make_job("new", **params)
        return web.json_response(job.model_dump(mode="json"), status=201)

    async def cancel(self, request: web.Request) -> web.Response:
        job = make_job(request.match_info["id"]).model_copy(update={"state": JobState.cancelled})
        return web.json_response(job.model_dump(mode="json"))

    async def move(self, request: web.Request) -> web.Response:
        body = await request.json()
        jobs = [make_job("a"), make_job("b")]
        if body["position"] == 0:
            jobs.reverse()
        return web.json_response([j.model_dump(mode="json") for j in jobs])

    async def file(self, request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG...", content_type="image/png")

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.ws_connects += 1
        await ws.send_str(EngineStatus(health=HEALTH).model_dump_json())
        await ws.send_str('{"type": "from_the_future", "x": 1}')  # unknown: skipped
        await ws.send_str(JobProgress(job_id="j", step=1, total=2).model_dump_json())
        if self.drop_first_ws and self.ws_connects == 1:
            await ws.close()
            return ws
        async for _msg in ws:  # keep the stream open until the client closes it
            pass
        return ws


@pytest.fixture
async def server():
    api = FakeApi()
    srv = TestServer(api.app(), host="127.0.0.1")
    await srv.start_server()
    yield api, str(srv.make_url("")).rstrip("/")
    await srv.close()


async def test_requests_carry_the_token_and_parse(server):
    api, url = server
    async with EngineClient(url, TOKEN) as c:
        assert (await c.health()).device == "cpu"
        assert (await c.samplers())[0].name == "Euler a"
        assert (await c.models())[0].embedded
        job = await c.submit(GenerateParams(prompt="x", width=64, height=64))
        assert job.id == "new" and job.spec.params.prompt == "x"
        assert (await c.cancel("j9")).state is JobState.cancelled
        assert [j.id for j in await c.move("b", 0)] == ["b", "a"]
        assert await c.file("j1", "x.png") == b"\x89PNG..."
    assert all(auth == f"Bearer {TOKEN}" for _m, _p, _b, auth in api.requests)
    posted = next(b for m, p, b, _a in api.requests if p == "/v1/jobs")
    assert posted["job"]["kind"] == "generate" and posted["priority"] == 0
    moved = next(b for m, p, b, _a in api.requests if p.endswith("/move"))
    assert moved == {"position": 0}


async def test_validation_error_keeps_field_and_message(server):
    _api, url = server
    async with EngineClient(url, TOKEN) as c:
        with pytest.raises(ApiError) as info:
            await c.submit(
                GenerateParams.model_construct(**{**GenerateParams().model_dump(), "width": 65})
            )
    err = info.value
    assert err.status == 422
    assert err.field == "job.params.width"
    assert err.message.startswith("Width: must be a multiple of 8")
    assert err.field_messages() == {
        "job.params.width": "must be a multiple of 8",
        "job.params.height": "too big",
    }


async def test_error_kinds(server):
    _api, url = server
    async with EngineClient(url, "wrong") as c:
        with pytest.raises(AuthError):
            await c.health()
    async with EngineClient(url, TOKEN) as c:
        with pytest.raises(NotFound, match="No job nope"):
            await c.job("nope")
        with pytest.raises(ApiError) as info:
            await c._request("GET", "/legacy")
        assert info.value.field == "job.params.steps"
        assert info.value.message == "too many"


async def test_unreachable_engine():
    async with EngineClient("http://127.0.0.1:9", TOKEN) as c:
        with pytest.raises(EngineUnavailable, match="Cannot reach"):
            await c.health()


async def test_events_parse_and_reconnect(server, monkeypatch):
    monkeypatch.setattr("app.client.RECONNECT_DELAYS_S", (0.05,))
    api, url = server
    got = []
    async with EngineClient(url, TOKEN) as c, aclosing(c.events()) as events:
        async for item in events:
            got.append(item)
            if sum(isinstance(i, StreamConnected) for i in got) == 2 and isinstance(
                item, JobProgress
            ):
                break
    kinds = [type(i).__name__ for i in got]
    assert kinds == [
        "StreamConnected",
        "EngineStatus",
        "JobProgress",
        "StreamLost",
        "StreamConnected",
        "EngineStatus",
        "JobProgress",
    ]
    assert isinstance(got[3], StreamLost)
    assert api.ws_connects == 2
    ws_request = next(r for r in api.requests if r[1] == "/v1/events")
    assert ws_request[3] == f"Bearer {TOKEN}"


async def test_events_with_a_wrong_token_raise(server):
    _api, url = server
    async with EngineClient(url, "wrong") as c:
        with pytest.raises(AuthError):
            async for _ in c.events():
                pass


def test_the_app_drops_idle_connections_before_the_engine_does():
    """An idle keep-alive connection must be retired by the app's pool before the engine closes
    it: otherwise a request now and then goes out on a connection the engine is closing and
    fails with "Server disconnected" (seen in the video e2e test with uvicorn's 5 s default)."""
    import engine.cli
    from app.client import KEEPALIVE_S

    assert KEEPALIVE_S < engine.cli.ENGINE_KEEPALIVE_S


async def test_the_pool_uses_the_keepalive():
    client = EngineClient("http://127.0.0.1:9", TOKEN)
    try:
        from app.client import KEEPALIVE_S

        assert client._get_session().connector._keepalive_timeout == KEEPALIVE_S
    finally:
        await client.close()


def test_only_requests_that_never_left_are_sent_again():
    import aiohttp

    from app.client import _is_stream, _unsent

    unsent = aiohttp.ClientOSError(None, "Can not write request body")
    unsent.__cause__ = aiohttp.ClientConnectionResetError("Cannot write to closing transport")
    assert _unsent(unsent)
    # the engine may have acted on these: not repeated
    assert not _unsent(aiohttp.ServerDisconnectedError())
    assert not _unsent(aiohttp.ClientOSError(None, "Connection reset by peer"))
    assert not _unsent(TimeoutError())
    assert _is_stream(iter([b"x"])) and not _is_stream(b"{}") and not _is_stream("{}")


async def test_fast_path_setting_goes_with_every_job(server):
    api, url = server
    async with EngineClient(url, TOKEN) as c:
        await c.submit(GenerateParams(prompt="x", width=64, height=64))
        c.fast_path = False  # Settings → Fast path off
        await c.submit(GenerateParams(prompt="y", width=64, height=64))
    posted = [b for m, p, b, _a in api.requests if p == "/v1/jobs"]
    assert [b["fast_path"] for b in posted] == [None, False]
