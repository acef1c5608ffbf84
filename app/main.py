"""``sfumato``: start the window first, then the engine, all on one qasync event loop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import signal
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__

if TYPE_CHECKING:
    from .controller import AppController
    from .ui.main_window import MainWindow

T0 = time.perf_counter()
log = logging.getLogger("app")
SMOKE_OK = "SFUMATO_SMOKE_OK"


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options; each also has an environment variable, for tests and scripts."""
    p = argparse.ArgumentParser(prog="sfumato", description="Sfumato — a diffusion studio.")
    p.add_argument(
        "--data-dir",
        default=os.environ.get("SFUMATO_DATA_DIR"),
        help="folder for history, outputs, settings and the local engine's data [SFUMATO_DATA_DIR]",
    )
    p.add_argument(
        "--engine-url",
        default=os.environ.get("SFUMATO_ENGINE_URL"),
        help="use the engine at this URL instead of starting one [SFUMATO_ENGINE_URL]",
    )
    p.add_argument(
        "--engine-token",
        default=os.environ.get("SFUMATO_ENGINE_TOKEN"),
        help="token for --engine-url [SFUMATO_ENGINE_TOKEN]",
    )
    p.add_argument(
        "--model",
        default=os.environ.get("SFUMATO_MODEL"),
        help="model id or path the local engine loads at start [SFUMATO_MODEL]",
    )
    p.add_argument(
        "--models-dir",
        action="append",
        type=Path,
        default=None,
        help="extra folder the local engine scans for models (repeatable) "
        "[SFUMATO_MODELS_DIRS, os.pathsep-separated]",
    )
    p.add_argument(
        "--engine-args",
        default=os.environ.get("SFUMATO_ENGINE_ARGS", ""),
        help="extra arguments for the local engine, shell-quoted [SFUMATO_ENGINE_ARGS]",
    )
    p.add_argument(
        "--engine-python",
        default=os.environ.get("SFUMATO_ENGINE_PYTHON"),
        help="Python that runs the local engine (the packaged app needs one; "
        "default: Settings' choice, else this app's Python) "
        "[SFUMATO_ENGINE_PYTHON]",
    )
    p.add_argument(
        "--no-engine", action="store_true", help="do not start or connect to an engine (UI only)"
    )
    p.add_argument(
        "--smoke-test",
        type=float,
        nargs="?",
        const=180.0,
        default=None,
        metavar="SECONDS",
        help="open the window, wait until the engine answers, print "
        f"'{SMOKE_OK} <url> <device>' and exit 0 (1 after SECONDS, default 180); "
        "the first-run dialog is not shown",
    )
    p.add_argument("--log-level", default=os.environ.get("SFUMATO_LOG", "WARNING"))
    p.add_argument(
        "files",
        nargs="*",
        type=Path,
        help="images to open (their settings are restored) or videos; what the "
        "desktop passes when a file is opened with Sfumato",
    )
    args, _qt_args = p.parse_known_args(argv)
    # Qt's own options (-style fusion) can land here too: keep only files that exist.
    args.files = [f for f in args.files if f.is_file()]
    if args.models_dir is None:
        env = os.environ.get("SFUMATO_MODELS_DIRS", "")
        args.models_dir = [Path(d) for d in env.split(os.pathsep) if d]
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sfumato`` console script and ``python -m app``."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    from .logs import install_crash_hooks, setup_app_logging
    from .paths import AppPaths

    log_file = setup_app_logging(AppPaths.default(args.data_dir).logs, args.log_level)
    install_crash_hooks(log_file)

    from PySide6.QtWidgets import QApplication

    from .qt_check import check_binding

    refusal = check_binding()
    if refusal:  # said on stderr and in the log first: a QApplication may fail without a display
        log.critical("refusing to start: %s", refusal)
        print(f"Sfumato: {refusal}", file=sys.stderr, flush=True)
    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    if refusal:
        return _refuse_to_start(refusal, show_dialog=args.smoke_test is None)
    app.setApplicationName("Sfumato")
    app.setOrganizationName("Sfumato")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("sfumato")
    app.setQuitOnLastWindowClosed(False)  # we quit after the engine is stopped

    import qasync

    from .ui.icons import app_icon
    from .ui.theme import apply_theme, follow_system

    app.setWindowIcon(app_icon())
    controller, window = create_window(args)
    apply_theme(app, controller.settings.theme)
    follow_system(app, lambda: controller.settings.theme)
    window.show()
    log.info(
        "window shown after %.2f s (Sfumato %s; log %s)",
        time.perf_counter() - T0,
        __version__,
        log_file,
    )
    session = _session(controller, window, ask=args.smoke_test is None)
    if args.smoke_test is None and not controller.settings.first_run_done:
        window.desktop.show_first_run()

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    closed = asyncio.Event()
    window.closed.connect(closed.set)
    _quit_on_signals(app, window)

    status = 0

    async def run() -> None:
        nonlocal status
        await asyncio.sleep(0)  # let the window paint before the engine's start-up work
        controller.spawn(controller.start())
        for path in args.files:
            window.desktop.open_file(path)
        if args.smoke_test is not None:
            status = await _smoke_test(controller, window, args.smoke_test)
        await closed.wait()
        session.end_cleanly()
        await controller.shutdown()

    try:
        with loop:
            loop.run_until_complete(run())
    finally:
        if controller.local is not None:
            controller.local.kill()
    return status


def _session(controller: AppController, window: MainWindow, *, ask: bool):
    """Offer back a session that ended uncleanly, then keep this one saved as it changes."""
    from .session_store import SessionStore, restore, session_path

    store = SessionStore(session_path(controller.paths.data_dir), controller, window)
    if not ask:  # --smoke-test: leave a crashed session for the next real start
        return store
    previous = store.unclean()
    if previous is not None:
        log.warning("the last session did not end cleanly (saved by pid %s)", previous.get("pid"))
        choice = os.environ.get("SFUMATO_RESTORE", "ask")  # scripts: yes / no
        if choice == "yes" or (choice == "ask" and _ask_restore(window, previous)):
            lost = restore(controller, previous, window)
            if lost:
                controller.notice.emit(
                    "warning", "Session restored, except " + ", ".join(lost) + "."
                )
            else:
                controller.notice.emit("info", "Session restored.")
    store.begin()
    return store


def _ask_restore(window: MainWindow, previous: dict) -> bool:
    from .ui.restore_prompt import ask_restore

    return ask_restore(window, previous)


def _refuse_to_start(message: str, *, show_dialog: bool) -> int:
    """A Python + PySide6 that would abort mid-session (app.qt_check): show it (already on
    stderr and in the log) in a dialog, and exit 2."""
    if show_dialog:
        from PySide6.QtWidgets import QMessageBox

        QMessageBox.critical(None, "Sfumato cannot start", message)
    return 2


async def _smoke_test(controller: AppController, window: MainWindow, timeout_s: float) -> int:
    """``--smoke-test``: wait for a usable engine, report it, close the window; 0 or 1."""
    from .model_check import CheckError, wait_until_usable

    try:
        await wait_until_usable(controller, timeout_s)
        health = controller.engine.health
        print(
            f"{SMOKE_OK} {controller.engine.url} {health.device if health is not None else '?'}",
            flush=True,
        )
        code = 0
    except CheckError as exc:
        print(f"SFUMATO_SMOKE_FAILED {exc}", flush=True)
        code = 1
    window.close()
    return code


def create_window(args: argparse.Namespace) -> tuple[AppController, MainWindow]:
    """The controller and its (not yet shown) window for parsed ``args``; needs a QApplication.

    Tests use this to drive the real window: ``create_window(parse_args([...]))``, then
    ``await controller.start()`` on a qasync loop.
    """
    from .controller import AppController
    from .engine_process import EngineLaunch
    from .paths import AppPaths
    from .session import LaunchOptions
    from .state.settings import Settings
    from .ui.main_window import MainWindow

    paths = AppPaths.default(args.data_dir)
    paths.ensure()
    settings = Settings(paths.settings_file)
    env_cmd = os.environ.get("SFUMATO_ENGINE_CMD")
    options = LaunchOptions(
        engine_url=args.engine_url,
        engine_token=args.engine_token,
        model=args.model,
        models_dirs=list(args.models_dir),
        engine_command=EngineLaunch.command_from_env() if env_cmd else None,
        engine_args=shlex.split(args.engine_args),
        spawn_engine=not args.no_engine,
        engine_python=args.engine_python,
    )
    controller = AppController(paths, settings, options)
    return controller, MainWindow(controller)


def _quit_on_signals(app, window) -> None:
    """Ctrl+C / SIGTERM close the window (and so stop the engine) without polling timers."""
    from PySide6.QtCore import QSocketNotifier

    rsock, wsock = socket.socketpair()
    rsock.setblocking(False)
    wsock.setblocking(False)
    signal.set_wakeup_fd(wsock.fileno())
    notifier = QSocketNotifier(rsock.fileno(), QSocketNotifier.Type.Read, app)

    def wake() -> None:
        try:
            rsock.recv(64)
        except OSError:
            pass

    notifier.activated.connect(wake)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: window.close())
    app._signal_sockets = (rsock, wsock, notifier)  # keep them alive


if __name__ == "__main__":
    sys.exit(main())
