"""Paths that people type (a model file, a video on the engine's machine) made safe to use.

``Path(text).expanduser()`` raises for ``~someone`` when there is no such user, and ``stat``
raises for a name longer than the file system allows or with a NUL byte: each was an HTTP 500.
Here they become a message saying what is wrong with the path.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Longest path text accepted (Linux's PATH_MAX is 4096 bytes).
MAX_PATH_BYTES = 4096


def path_problem(text: str) -> str:
    """Why ``text`` cannot name a file on this machine, or "" if it might."""
    if "\x00" in text:
        return "it contains a NUL byte"
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        return f"it is longer than {MAX_PATH_BYTES} bytes"
    if text.startswith("~"):
        user = text[1:].split("/", 1)[0].split(os.sep, 1)[0]
        try:
            Path(text).expanduser()
        except RuntimeError:
            return (
                f"there is no user {user!r} on the engine's machine"
                if user
                else "the engine's user has no home folder"
            )
    try:
        os.stat(Path(text).expanduser())
    except OSError as exc:
        if exc.errno is not None and exc.strerror and exc.errno not in (2, 20):  # ENOENT, ENOTDIR
            return exc.strerror.lower()
    except ValueError as exc:
        return str(exc)
    return ""


def local_path(text: str) -> Path | None:
    """``text`` with ``~`` expanded, or None if it cannot name a file here (see
    :func:`path_problem`)."""
    if path_problem(text):
        return None
    return Path(text).expanduser()
