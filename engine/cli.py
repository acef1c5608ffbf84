"""``sfumato-engine``: serve the engine API.

Listens on 127.0.0.1 by default. The token comes from ``--token-file`` (its first line) or the
environment variable ``SFUMATO_ENGINE_TOKEN``; without either a random one is made and printed
once. ``--token`` still works but puts the token in every local user's process list. When the
server listens, one line ``SFUMATO_ENGINE_READY <url>`` goes to stdout: the app reads it to learn
the port when it asked for ``--port 0``.

Started by the app (``--exit-with-stdin``), the engine exits within 2 s of the app's death,
however it died: it watches its stdin, a pipe whose other end only the app holds, for end of
file; on Linux the kernel also signals it when its parent dies (``PR_SET_PDEATHSIG``); and the
app's PID (``SFUMATO_PARENT_PID``) is polled as a last resort.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.handlers
import os
import secrets
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
    ap.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on (default 127.0.0.1; use 0.0.0.0 on a GPU box)",
    )
    ap.add_argument("--port", type=int, default=7861, help="TCP port; 0 picks a free one")
    ap.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help=f"file whose first line is the access token (default: ${TOKEN_ENV}, "
        "else a random one, printed)",
    )
    ap.add_argument(
        "--token",
        default=None,
        help="access token (avoid: other local users see it in the process list; "
        "use --token-file or $" + TOKEN_ENV + ")",
    )
    ap.add_argument(
        "--exit-with-stdin",
        action="store_true",
        help="exit when stdin reaches end of file (the app that started us is gone)",
    )
    ap.add_argument("--data-dir", type=Path, default=None, help="queue database, models/, logs/")
    ap.add_argument("--output-dir", type=Path, default=None, help="where images are saved")
    ap.add_argument(
        "--models-dir",
        type=Path,
        action="append",
        default=[],
        help="extra folder of models (repeatable)",
    )
    ap.add_argument(
        "--model",
        default=None,
        help="model id or path used when a job names none (default: the embedded one)",
    )
    ap.add_argument("--device", default="auto", help="auto, cuda, cuda:N, mps or cpu")
    ap.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "fp16", "bf16", "fp32"],
        help="weights' precision (default auto: fp16 on CUDA/MPS, fp32 on the CPU); "
        "the VAE decodes in fp32 wherever fp16 would overflow",
    )
    ap.add_argument(
        "--fast-path",
        default="auto",
        choices=["auto", "on", "off"],
        help="compiled UNet/VAE with CUDA graphs, warmed up in the background after "
        "a model loads (default auto: on with CUDA, off on the CPU)",
    )
    ap.add_argument(
        "--offload",
        default="none",
        choices=["none", "t5-cpu", "model"],
        help="for small GPUs: t5-cpu runs SD3/Flux's T5 text encoder on the CPU; "
        "model moves each part to the GPU only while it runs (slower)",
    )
    ap.add_argument("--preload", action="store_true", help="load the default model at start")
    ap.add_argument(
        "--max-upload-mb",
        type=int,
        default=None,
        help="largest upload (video or image) in MiB (default 2048)",
    )
    ap.add_argument("--log-level", default="info")
    return ap.parse_args(argv)


def setup_logging(data_dir: Path, level: str) -> None:
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [
        logging.handlers.RotatingFileHandler(
            logs / "engine.log", maxBytes=2_000_000, backupCount=3
        ),
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


def read_token(args: argparse.Namespace) -> str | None:
    """The token from ``--token-file``, ``--token`` or the environment (in that order)."""
    if args.token_file is not None:
        try:
            lines = args.token_file.expanduser().read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise SystemExit(f"sfumato-engine: cannot read the token file: {exc}") from None
        token = lines[0].strip() if lines else ""
        if not token:
            raise SystemExit(f"sfumato-engine: the token file {args.token_file} is empty")
        return token
    if args.token:
        print(
            "sfumato-engine: --token is visible to every local user (ps); prefer "
            f"--token-file or ${TOKEN_ENV}",
            file=sys.stderr,
            flush=True,
        )
        return args.token
    return os.environ.get(TOKEN_ENV) or None


#: After the app is gone, seconds the engine waits for its graceful shutdown before it exits
#: anyway (a step of a large model can outlast it; the job is resumed by the next engine).
PARENT_GONE_GRACE_S = 1.2


class ParentWatch:
    """Stop the engine when the app that started it is gone: never an orphan.

    Three signs, whichever comes first: end of file on stdin (``--exit-with-stdin``: the app
    holds the pipe's write end, and the kernel closes it however the app dies, SIGKILL
    included); ``PR_SET_PDEATHSIG`` on Linux; the app's PID (``SFUMATO_PARENT_PID``) gone, or
    this process re-parented away from the one that started it (the app, or a wrapper command
    the app ran), polled each second: a zombie app keeps its PID alive. Then the server is asked to stop, and after :data:`PARENT_GONE_GRACE_S` the
    process exits regardless, with the running job handed back to the queue (``on_abandon``).
    """

    def __init__(self, server, on_abandon=lambda: None) -> None:
        import threading

        self.server, self.on_abandon = server, on_abandon
        self._fired = threading.Event()

    def start(self, stdin: bool) -> None:
        import threading

        if stdin:
            threading.Thread(target=self._watch_stdin, name="stdin-watch", daemon=True).start()
        try:
            parent = int(os.environ.get("SFUMATO_PARENT_PID", ""))
        except ValueError:
            return
        # The process that started us: the app, or a wrapper it ran (SFUMATO_ENGINE_CMD).
        # Being re-parented away from it means it died.
        starter = os.getppid()
        self._death_signal(starter)
        threading.Thread(
            target=self._poll_pid, args=(parent, starter), name="parent-watch", daemon=True
        ).start()

    def gone(self, why: str) -> None:
        """The app is gone: stop now, and for sure within the grace time."""
        import threading

        if self._fired.is_set():
            return
        self._fired.set()
        logging.getLogger(__name__).warning("the app is gone (%s): stopping", why)
        self.server.should_exit = True
        threading.Thread(target=self._exit_after_grace, name="exit-deadline", daemon=True).start()

    def _exit_after_grace(self) -> None:
        import time

        time.sleep(PARENT_GONE_GRACE_S)
        try:
            self.on_abandon()
        except Exception:  # exiting regardless; the next engine then counts a crash
            logging.getLogger(__name__).exception("could not hand the running job back")
        finally:
            logging.shutdown()
            os._exit(0)

    def _watch_stdin(self) -> None:
        try:
            while sys.stdin.buffer.read1(4096):
                pass  # the app never writes; anything it does is ignored
        except (OSError, ValueError):
            pass
        self.gone("its pipe closed")

    def _death_signal(self, starter: int) -> None:
        """Linux: have the kernel send SIGUSR2 when our parent dies (even by SIGKILL)."""
        import signal

        if not sys.platform.startswith("linux") or not hasattr(signal, "SIGUSR2"):
            return
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            if libc.prctl(pr_set_pdeathsig, int(signal.SIGUSR2), 0, 0, 0) != 0:
                return
        except (OSError, AttributeError):
            return
        signal.signal(signal.SIGUSR2, lambda *_: self.gone("parent died (PR_SET_PDEATHSIG)"))
        if os.getppid() != starter:  # it died before the signal was armed
            self.gone("parent already gone")

    def _poll_pid(self, parent: int, starter: int) -> None:
        import time

        while not self._fired.is_set():
            time.sleep(1.0)
            if os.getppid() != starter:  # re-parented: the app is dead, even as a zombie
                return self.gone(f"pid {starter}, which started us, is gone")
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                return self.gone(f"pid {parent} exited")
            except PermissionError:
                pass  # alive, owned by someone else


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub at run time
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    data_dir = (args.data_dir or default_data_dir()).expanduser()
    setup_logging(data_dir, args.log_level)
    token = read_token(args)
    if not token:
        token = secrets.token_urlsafe(24)
        print(f"token: {token}", file=sys.stderr, flush=True)

    import uvicorn

    _quiet_libraries()
    from engine import gc_pauses
    from engine.auth import TokenGate
    from engine.listen import listening_socket
    from engine.server import create_app
    from engine.service import Engine, EngineConfig

    engine = Engine(
        EngineConfig(
            data_dir=data_dir,
            output_dir=args.output_dir,
            models_dirs=list(args.models_dir),
            model=args.model,
            device=args.device,
            dtype=args.dtype,
            fast_path=args.fast_path,
            offload=args.offload,
            preload=args.preload,
            max_upload_mb=args.max_upload_mb,
        )
    )
    app = TokenGate(create_app(engine), token)
    gc_pauses.settle()  # the libraries just imported: out of the collector's full passes
    try:
        sock = listening_socket(args.host, args.port)
    except OSError as exc:
        print(f"sfumato-engine: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    # Open event streams would otherwise hold a graceful shutdown (SIGTERM) open forever.
    # Idle keep-alive connections live longer here than in the app's pool (app/client.py,
    # KEEPALIVE_S), so the app always drops an idle connection first: with uvicorn's 5 s the
    # app could reuse one the engine was closing and a request failed with "Server
    # disconnected" / "Can not write request body" now and then.
    config = uvicorn.Config(
        app,
        log_level="warning",
        ws_ping_interval=20,
        lifespan="on",
        timeout_graceful_shutdown=3,
        timeout_keep_alive=ENGINE_KEEPALIVE_S,
    )
    server = uvicorn.Server(config)
    ParentWatch(server, on_abandon=engine.queue.abandon).start(stdin=args.exit_with_stdin)

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started:
            host = f"[{args.host}]" if ":" in args.host else args.host
            print(f"{READY_PREFIX} http://{host}:{port}", flush=True)
        await task

    asyncio.run(serve())
    # Everything is saved: the queue database is closed and every output was fsynced before
    # it was announced. Skip the interpreter's teardown, which with torch loaded spends
    # seconds in library destructors (4-5 s measured on a CPU machine): an engine whose app
    # is gone exits at once.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
