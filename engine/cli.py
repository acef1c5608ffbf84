"""``sfumato-engine``: serve the engine API.

Listens on 127.0.0.1 by default. The token comes from ``--token`` or the environment variable
``SFUMATO_ENGINE_TOKEN``; without either a random one is made and printed. When the server
listens, one line ``SFUMATO_ENGINE_READY <url>`` goes to stdout: the app reads it to learn the
port when it asked for ``--port 0``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.handlers
import os
import secrets
import socket
import sys
from pathlib import Path

READY_PREFIX = "SFUMATO_ENGINE_READY"
TOKEN_ENV = "SFUMATO_ENGINE_TOKEN"
#: Seconds an idle HTTP keep-alive connection stays open; above the app's pool (10 s).
ENGINE_KEEPALIVE_S = 60


def default_data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(os.environ.get("SFUMATO_DATA_DIR") or user_data_dir("Sfumato", appauthor=False))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="sfumato-engine", description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1",
                    help="interface to listen on (default 127.0.0.1; use 0.0.0.0 on a GPU box)")
    ap.add_argument("--port", type=int, default=7861, help="TCP port; 0 picks a free one")
    ap.add_argument("--token", default=None, help=f"access token (default: ${TOKEN_ENV} or random)")
    ap.add_argument("--data-dir", type=Path, default=None, help="queue database, models/, logs/")
    ap.add_argument("--output-dir", type=Path, default=None, help="where images are saved")
    ap.add_argument("--models-dir", type=Path, action="append", default=[],
                    help="extra folder of models (repeatable)")
    ap.add_argument("--model", default=None,
                    help="model id or path used when a job names none (default: the embedded one)")
    ap.add_argument("--device", default="auto", help="auto, cuda, cuda:N, mps or cpu")
    ap.add_argument("--preload", action="store_true", help="load the default model at start")
    ap.add_argument("--log-level", default="info")
    return ap.parse_args(argv)


def setup_logging(data_dir: Path, level: str) -> None:
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [
        logging.handlers.RotatingFileHandler(logs / "engine.log", maxBytes=2_000_000, backupCount=3),
        logging.StreamHandler(sys.stderr),
    ]
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for h in handlers:
        h.setFormatter(fmt)
    logging.basicConfig(level=level.upper(), handlers=handlers, force=True)


def _quiet_libraries() -> None:
    """No tqdm bars from diffusers/transformers: they flood the engine log."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def _exit_with_parent(server) -> None:
    """Stop when the app that started us is gone (``SFUMATO_PARENT_PID``): never an orphan."""
    import threading
    import time

    try:
        parent = int(os.environ.get("SFUMATO_PARENT_PID", ""))
    except ValueError:
        return

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                logging.getLogger(__name__).warning("the app (pid %d) is gone: stopping", parent)
                server.should_exit = True
                return
            except PermissionError:
                pass  # alive, owned by someone else

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub at run time
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    data_dir = (args.data_dir or default_data_dir()).expanduser()
    setup_logging(data_dir, args.log_level)
    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        token = secrets.token_urlsafe(24)
        print(f"token: {token}", file=sys.stderr, flush=True)

    import uvicorn

    _quiet_libraries()
    from engine.server import TokenGate, create_app
    from engine.service import Engine, EngineConfig

    engine = Engine(
        EngineConfig(
            data_dir=data_dir,
            output_dir=args.output_dir,
            models_dirs=list(args.models_dir),
            model=args.model,
            device=args.device,
            preload=args.preload,
        )
    )
    app = TokenGate(create_app(engine), token)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(f"sfumato-engine: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    # Open event streams would otherwise hold a graceful shutdown (SIGTERM) open forever.
    # Idle keep-alive connections live longer here than in the app's pool (app/client.py,
    # KEEPALIVE_S), so the app always drops an idle connection first: with uvicorn's 5 s the
    # app could reuse one the engine was closing and a request failed with "Server
    # disconnected" / "Can not write request body" now and then.
    config = uvicorn.Config(app, log_level="warning", ws_ping_interval=20, lifespan="on",
                            timeout_graceful_shutdown=3, timeout_keep_alive=ENGINE_KEEPALIVE_S)
    server = uvicorn.Server(config)
    _exit_with_parent(server)

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started:
            host = f"[{args.host}]" if ":" in args.host else args.host
            print(f"{READY_PREFIX} http://{host}:{port}", flush=True)
        await task

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
