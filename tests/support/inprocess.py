"""The real engine app in this process, for fast HTTP-level tests of validation and limits.

Same FastAPI app and token gate as ``sfumato-engine`` serves, on a real :class:`Engine` (model
registry, SQLite queue, uploads), driven by Starlette's TestClient. The lifespan is not run, so
the GPU worker never starts: jobs a test submits stay queued and nothing is rendered. Tests of
running jobs, crashes and streaming use :mod:`tests.support.engine_proc` instead.
"""

from __future__ import annotations

from pathlib import Path

TOKEN = "inprocess-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def engine_app(data_dir: Path, models_dir: Path, extra_models_dirs=(), **config):
    """``(asgi_app, engine)``: the token-gated app and the engine behind it."""
    from engine.auth import TokenGate
    from engine.server import create_app
    from engine.service import Engine, EngineConfig

    engine = Engine(
        EngineConfig(
            data_dir=data_dir,
            models_dirs=[models_dir, *extra_models_dirs],
            model="tiny-sd",
            **config,
        )
    )
    return TokenGate(create_app(engine), TOKEN), engine
