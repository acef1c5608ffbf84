"""Which program runs the local engine, and from which folder.

A source checkout or a ``pip install sfumato`` runs the engine with the app's own Python
(``python -m engine.cli``). The packaged app (PyInstaller, ``sys.frozen``) has no torch inside —
CUDA builds of torch are gigabytes — so it runs the engine with a Python environment the user
points to (Settings → "Engine Python", ``--engine-python``, ``SFUMATO_ENGINE_PYTHON``), or uses
a remote engine. ``SFUMATO_ENGINE_CMD`` overrides everything (tests, custom launchers).
See packaging/README.md for the trade-off.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

ENGINE_MODULE = ["-m", "engine.cli"]
#: How far above the interpreter we look for a source checkout (``<repo>/.venv/bin/python``).
CHECKOUT_DEPTH = 4


def is_frozen() -> bool:
    """True inside the packaged (PyInstaller) app."""
    return bool(getattr(sys, "frozen", False))


def engine_command(engine_python: str = "") -> list[str] | None:
    """The engine's command line without its arguments, or None when nothing can run it.

    ``SFUMATO_ENGINE_CMD`` wins; then ``engine_python``; then this interpreter unless frozen.
    """
    env_cmd = os.environ.get("SFUMATO_ENGINE_CMD", "").strip()
    if env_cmd:
        return shlex.split(env_cmd)
    if engine_python.strip():
        return [str(Path(engine_python.strip()).expanduser()), *ENGINE_MODULE]
    if is_frozen():
        return None
    return [sys.executable, *ENGINE_MODULE]


def engine_workdir(command: list[str]) -> Path | None:
    """The source checkout an interpreter belongs to (``<repo>/.venv/bin/python`` → ``<repo>``).

    The engine then imports the checkout's ``engine`` package even when it is not installed in
    that environment. Outside the packaged app, the app's own checkout is the fallback; None
    for an installed sfumato (any working folder will do).
    """
    if command:
        program = Path(command[0]).expanduser()
        for parent in list(program.absolute().parents)[:CHECKOUT_DEPTH]:
            if (parent / "engine" / "cli.py").is_file():
                return parent
    if not is_frozen():
        here = Path(__file__).resolve().parent.parent
        if (here / "engine" / "cli.py").is_file():
            return here
    return None


NO_ENGINE_MESSAGE = (
    "This packaged Sfumato runs models in a separate engine, which needs Python with torch. "
    "Choose that Python environment (or a remote engine) in Help → First-run setup."
)
