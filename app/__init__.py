"""Sfumato's GUI process (PySide6 + qasync).

It never imports torch, diffusers or engine internals: it talks to the engine over HTTP and a
WebSocket, using :mod:`engine.protocol` only. The map:

- ``main.py``            — ``sfumato`` / ``python -m app``: window first, then the engine
- ``engine_process.py``  — start, watch and restart the local engine process (QProcess)
- ``engine_locator.py``  — which Python runs the local engine (the packaged app has no torch)
- ``logs.py``            — rotated app and engine-console logs in the platform's log folder
- ``diagnostics.py``     — "Copy diagnostic info" and the About text (never the token)
- ``model_check.py``     — the first-run check: one tiny image through the real engine
- ``client.py``          — async aiohttp client of the /v1 API and its event stream
- ``session.py``         — the engine connection: client, local engine, sync, job-kind router
- ``controllers/``       — one controller per capability (generate, compare, fits, video,
  robustness, prompt tools; results, queue), each claiming its own job kinds
- ``controller.py``      — the composition root: builds and wires state, session, controllers
- ``state/``             — observable state (QObject + signals, no widgets), unit-tested alone
- ``library.py``         — result files and the SQLite History index; ``recipe.py`` reads PNG recipes
- ``ui/``                — widgets only; they bind to state and call controller actions
  (``ui/desktop.py``: Help menu, recent files, shortcuts; ``ui/first_run.py``; ``ui/theme.py``)
"""

__version__ = "0.1.0"
