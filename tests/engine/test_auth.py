"""The token and the browser rules on the real engine process: the token from a file (never on
the command line), ``?token=`` only where a header cannot be sent, the /docs page offline with
an expiring cookie, distinct refusals of event streams, and a shutdown that does not wait on
open event streams."""

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from tests.support.engine_proc import EngineProcess

pytestmark = pytest.mark.slow


async def test_token_rules_docs_page_and_a_quick_shutdown(tmp_path, tiny_models_dir):
    token_file = tmp_path / "token"
    token_file.write_text("from-the-file\n")
    engine = EngineProcess(
        tmp_path / "data",
        tiny_models_dir,
        token="from-the-file",
        extra_args=["--token-file", str(token_file)],
    )
    engine.data_dir.mkdir()
    engine.start()
    try:
        cmdline = Path(f"/proc/{engine.proc.pid}/cmdline").read_bytes()
        assert b"from-the-file" not in cmdline  # not in any local user's process list
        base, good = engine.url, {"Authorization": "Bearer from-the-file"}
        async with aiohttp.ClientSession() as s:
            async with s.get(
                f"{base}/v1/health", headers={"Authorization": "Bearer test-token"}
            ) as r:
                assert r.status == 401  # the environment's token lost to the file's
            async with s.get(f"{base}/v1/health", headers=good) as r:
                assert r.status == 200
            async with s.get(f"{base}/v1/health?token=from-the-file") as r:
                assert r.status == 401  # ?token= is only for the event stream and /docs

            # Event streams: refused at the handshake, 401 for the token, 403 for a web page
            with pytest.raises(aiohttp.WSServerHandshakeError) as bad:
                await s.ws_connect(f"{base}/v1/events?token=wrong")
            with pytest.raises(aiohttp.WSServerHandshakeError) as page:
                await s.ws_connect(
                    f"{base}/v1/events?token=from-the-file",
                    headers={"Origin": "https://evil.example"},
                )
            assert (bad.value.status, page.value.status) == (401, 403)

        # /docs: the cookie expires, and the page loads nothing from another host. (A browser
        # keeps cookies of 127.0.0.1; aiohttp does only when told to.)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            async with s.get(f"{base}/docs?token=from-the-file") as r:
                assert r.status == 200
                html = await r.text()
                cookie = r.headers["Set-Cookie"]
            assert "Max-Age=" in cookie and "HttpOnly" in cookie
            assert "/docs/assets/swagger-ui-bundle.js" in html
            assert "cdn" not in html and "https://" not in html
            async with s.get(f"{base}/docs/assets/swagger-ui-bundle.js") as r:
                assert r.status == 200 and len(await r.read()) > 100_000  # by the cookie
            async with s.get(f"{base}/openapi.json") as r:
                assert r.status == 200 and "/v1/jobs" in (await r.json())["paths"]
            async with s.get(f"{base}/v1/health") as r:
                assert r.status == 401  # the docs cookie is not a key to the API

        # Shutdown with event streams open: no waiting out the grace time, no tracebacks
        async with aiohttp.ClientSession() as s:
            streams = [
                await s.ws_connect(f"{base}/v1/events?token=from-the-file") for _ in range(3)
            ]
            for ws in streams:
                await ws.receive(timeout=30)  # the engine status each stream starts with
            t0 = time.monotonic()
            os.kill(engine.proc.pid, signal.SIGTERM)
            while engine.proc.poll() is None and time.monotonic() - t0 < 20:
                await asyncio.sleep(0.05)
            took = time.monotonic() - t0
    finally:
        engine.stop()
    assert took < 2.5, f"shutdown took {took:.1f} s with 3 event streams open"
    logs = (engine.data_dir / "stderr.log").read_text()
    assert "Traceback" not in logs and "CancelledError" not in logs, logs[-2000:]
