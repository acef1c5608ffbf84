"""Log files: the app's and the local engine's console, rotated, in the platform's log folder.

``AppPaths.logs`` says where (platformdirs' ``user_log_dir``; ``<data dir>/logs`` when a data
folder was given explicitly, so tests and portable installs keep everything in one place).
"""

from __future__ import annotations

import faulthandler
import logging
import logging.handlers
import sys
import threading
from pathlib import Path
from types import TracebackType

APP_LOG = "sfumato.log"
#: The local engine's stdout and stderr, line by line (see app.engine_process).
ENGINE_LOG = "engine-console.log"
MAX_BYTES = 2 * 1024 * 1024
BACKUPS = 3
FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"


class _AppLogHandler(logging.handlers.RotatingFileHandler):
    """The app's log file; after each rotation faulthandler is pointed at the new file."""

    def doRollover(self) -> None:
        super().doRollover()
        if _fault_file is not None:
            _enable_faulthandler(Path(self.baseFilename))


def rotating_handler(path: Path, fmt: str = FORMAT) -> logging.Handler | None:
    """A size-rotated file handler for ``path`` (its folder is created); None if not writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = _AppLogHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", delay=True
        )
    except OSError:
        return None
    handler.setFormatter(logging.Formatter(fmt))
    return handler


def setup_app_logging(log_dir: Path, level: str = "WARNING") -> Path:
    """Console at ``level``; the file gets INFO and up (a user's bug report needs the story)."""
    root = logging.getLogger()
    numeric = logging.getLevelName(level.upper())
    numeric = numeric if isinstance(numeric, int) else logging.WARNING
    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter(FORMAT))
    console.setLevel(numeric)
    root.addHandler(console)
    path = log_dir / APP_LOG
    handler = rotating_handler(path)
    if handler is not None:
        handler.setLevel(min(numeric, logging.INFO))
        root.addHandler(handler)
    root.setLevel(min(numeric, logging.INFO))
    return path


# ------------------------------------------------------------------ crashes into the log file
_fault_file = None  # the open file faulthandler writes to (it needs a file descriptor)
crash_log = logging.getLogger("app.crash")


def _enable_faulthandler(path: Path) -> None:
    global _fault_file
    try:
        new = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for faulthandler
    except OSError:
        return
    faulthandler.enable(file=new, all_threads=True)
    old, _fault_file = _fault_file, new
    if old is not None:
        old.close()


def install_crash_hooks(log_file: Path) -> None:
    """Send what would otherwise vanish with the process into ``log_file``:

    - a hard crash (segfault, abort such as "none_dealloc"): Python's faulthandler writes every
      thread's stack straight to the file, no logging machinery involved;
    - an uncaught exception on the UI thread (``sys.excepthook``; Qt slots end up there) or in
      another thread (``threading.excepthook``): logged with its traceback, the app goes on;
    - Qt's own warnings and errors (``qInstallMessageHandler``), under the logger ``qt``.
    """
    _enable_faulthandler(log_file)
    previous = sys.excepthook

    def excepthook(
        kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        if issubclass(kind, KeyboardInterrupt):
            previous(kind, value, tb)
            return
        crash_log.critical("uncaught exception", exc_info=(kind, value, tb))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        crash_log.critical(
            "uncaught exception in thread %s",
            name,
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )

    sys.excepthook = excepthook
    threading.excepthook = thread_hook
    _install_qt_messages()


#: Qt message type → logging level (QtMsgType's values: debug 0, warning 1, critical 2,
#: fatal 3, info 4).
_QT_LEVELS = {
    0: logging.DEBUG,
    1: logging.WARNING,
    2: logging.ERROR,
    3: logging.CRITICAL,
    4: logging.INFO,
}


def _install_qt_messages() -> None:
    try:
        from PySide6.QtCore import qInstallMessageHandler
    except ImportError:
        return
    qt_log = logging.getLogger("qt")

    def handler(mode, context, message: str) -> None:
        level = _QT_LEVELS.get(int(getattr(mode, "value", mode)), logging.WARNING)
        where = f" ({context.file}:{context.line})" if getattr(context, "file", None) else ""
        qt_log.log(level, "%s%s", message, where)

    qInstallMessageHandler(handler)


def engine_console_logger(log_dir: Path) -> logging.Logger:
    """A logger that writes the engine's output lines, as they are, to ``engine-console.log``.

    It does not propagate to the app's log: the engine's chatter stays in its own file.
    """
    name = f"sfumato.engine-console.{log_dir}"
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    if not logger.handlers:
        handler = rotating_handler(log_dir / ENGINE_LOG, "%(message)s")
        if handler is not None:
            logger.addHandler(handler)
    return logger
