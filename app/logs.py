"""Log files: the app's and the local engine's console, rotated, in the platform's log folder.

``AppPaths.logs`` says where (platformdirs' ``user_log_dir``; ``<data dir>/logs`` when a data
folder was given explicitly, so tests and portable installs keep everything in one place).
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

APP_LOG = "sfumato.log"
#: The local engine's stdout and stderr, line by line (see app.engine_process).
ENGINE_LOG = "engine-console.log"
MAX_BYTES = 2 * 1024 * 1024
BACKUPS = 3
FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"


def rotating_handler(path: Path, fmt: str = FORMAT) -> logging.Handler | None:
    """A size-rotated file handler for ``path`` (its folder is created); None if not writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", delay=True)
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
