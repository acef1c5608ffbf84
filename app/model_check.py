"""The first-run check: one tiny generation with the embedded model, through the real engine."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.protocol import GenerateParams, JobState

from .client import EngineError
from .state import Connection

if TYPE_CHECKING:
    from .controller import AppController

EMBEDDED_MODEL = "sfumato-tiny"
#: A prompt (and seed) the shipped tiny weights draw recognisably (see the model card).
CHECK_PROMPT = "hamburger, twemoji style, on a purple background"
CHECK_SEED = 17


class CheckError(Exception):
    """The check failed; the message says what to do."""


@dataclass(frozen=True)
class CheckResult:
    png: bytes
    seconds: float
    model: str
    device: str


async def wait_until_usable(controller: AppController, timeout_s: float) -> None:
    """Until the engine answers requests; CheckError if it is down or takes too long."""
    deadline = time.monotonic() + timeout_s
    while not controller.engine.connection.usable:
        if controller.engine.connection in (Connection.disconnected, Connection.stopped):
            detail = controller.engine.detail.splitlines()[0] if controller.engine.detail else ""
            raise CheckError(f"No engine is running. {detail}".strip())
        if time.monotonic() > deadline:
            raise CheckError(f"The engine did not become ready within {timeout_s:.0f} s.")
        await asyncio.sleep(0.2)


async def check_embedded_model(controller: AppController, timeout_s: float = 300.0) -> CheckResult:
    """Generate one 64×64 image with the embedded model; its PNG bytes, or CheckError."""
    await wait_until_usable(controller, timeout_s)
    client = controller.client
    if client is None:
        raise CheckError("Not connected to an engine.")
    try:  # ask: the event stream can make the engine "ready" before the app's model list
        ids = {m.id for m in await client.models()}
    except EngineError as exc:
        raise CheckError(f"The engine did not list its models: {exc}") from exc
    model = EMBEDDED_MODEL if EMBEDDED_MODEL in ids else None
    params = GenerateParams(model=model, prompt=CHECK_PROMPT, seed=CHECK_SEED, width=64,
                            height=64, steps=20, cfg_scale=5.0)
    t0 = time.monotonic()
    try:
        job = await client.submit(params)
        while not job.state.finished:
            if time.monotonic() - t0 > timeout_s:
                await client.cancel(job.id)
                raise CheckError(f"The test image took longer than {timeout_s:.0f} s.")
            await asyncio.sleep(0.25)
            job = await client.job(job.id)
        if job.state is not JobState.done or not job.results:
            raise CheckError(f"The test image failed: {job.message or job.state.value}.")
        png = await client.file(job.id, job.results[0].name)
    except EngineError as exc:
        raise CheckError(f"The engine refused the test image: {exc}") from exc
    health = controller.engine.health
    return CheckResult(png=png, seconds=time.monotonic() - t0, model=model or "default model",
                       device=health.device if health is not None else "?")
