"""The first-run check: one tiny generation with the embedded model, through the real engine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
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
    #: From submitting the job to its image (model loading included).
    seconds: float
    model: str
    device: str
    #: Waiting for the engine to answer, before the job was submitted.
    engine_seconds: float = 0.0
    #: Submit to the first denoising step: queueing and, the first time, loading the model.
    load_seconds: float = 0.0
    #: First step to the image: the generation itself.
    generate_seconds: float = 0.0

    def summary(self) -> str:
        """One line for the dialog, e.g. 'sfumato-tiny on cpu: loaded in 2.1 s, image in 0.8 s'."""
        parts = []
        if self.engine_seconds >= 0.5:
            parts.append(f"engine ready in {self.engine_seconds:.1f} s")
        if self.load_seconds >= 0.5:
            parts.append(f"model loaded in {self.load_seconds:.1f} s")
        parts.append(f"one image in {self.generate_seconds or self.seconds:.1f} s")
        return f"{self.model} on {self.device}: " + ", ".join(parts) + "."


#: Progress lines the check reports while it runs.
Progress = Callable[[str], None]
#: How often the check asks the engine about its job: a fifth of a 20-step tiny generation.
POLL_S = 0.1


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


async def preload_embedded_model(controller: AppController, timeout_s: float = 300.0) -> None:
    """Load the built-in model while the first-run dialog is being read, so that its check
    only generates (loading was most of the check's time). Quiet: nothing happens if the
    engine does not come up, a model is loaded already, or there is no built-in model."""
    try:
        await wait_until_usable(controller, timeout_s)
    except CheckError:
        return
    engine = controller.engine
    if engine.loaded_model is not None or engine.loading_model or controller.client is None:
        return
    try:
        ids = {m.id for m in await controller.client.models()}
    except EngineError:
        return
    if EMBEDDED_MODEL in ids and engine.loaded_model is None and not engine.loading_model:
        controller.session.load_model(EMBEDDED_MODEL)


async def check_embedded_model(
    controller: AppController, timeout_s: float = 300.0, progress: Progress | None = None
) -> CheckResult:
    """Generate one 64×64 image with the embedded model; its PNG bytes, or CheckError.
    ``progress`` hears what it is waiting for (engine, model loading, steps)."""
    say = progress or (lambda _text: None)
    t_engine = time.monotonic()
    if not controller.engine.connection.usable:
        say("Starting the engine…")
    await wait_until_usable(controller, timeout_s)
    engine_s = time.monotonic() - t_engine
    client = controller.client
    if client is None:
        raise CheckError("Not connected to an engine.")
    try:  # ask: the event stream can make the engine "ready" before the app's model list
        ids = {m.id for m in await client.models()}
    except EngineError as exc:
        raise CheckError(f"The engine did not list its models: {exc}") from exc
    model = EMBEDDED_MODEL if EMBEDDED_MODEL in ids else None
    params = GenerateParams(
        model=model,
        prompt=CHECK_PROMPT,
        seed=CHECK_SEED,
        width=64,
        height=64,
        steps=20,
        cfg_scale=5.0,
    )
    t0 = time.monotonic()
    t_first_step: float | None = None
    try:
        job = await client.submit(params)
        say("Loading the built-in model…")
        while not job.state.finished:
            if time.monotonic() - t0 > timeout_s:
                await client.cancel(job.id)
                raise CheckError(f"The test image took longer than {timeout_s:.0f} s.")
            await asyncio.sleep(POLL_S)
            job = await client.job(job.id)
            if job.step > 0:
                if t_first_step is None:
                    t_first_step = time.monotonic()
                say(f"Generating the test image: step {job.step} of {job.total or params.steps}…")
        if job.state is not JobState.done or not job.results:
            raise CheckError(f"The test image failed: {job.message or job.state.value}.")
        png = await client.file(job.id, job.results[0].name)
    except EngineError as exc:
        raise CheckError(f"The engine refused the test image: {exc}") from exc
    health = controller.engine.health
    t_end = time.monotonic()
    first = t_first_step if t_first_step is not None else t0
    return CheckResult(
        png=png,
        seconds=t_end - t0,
        model=model or "default model",
        device=health.device if health is not None else "?",
        engine_seconds=engine_s,
        load_seconds=first - t0,
        generate_seconds=t_end - first,
    )
