"""A session and a library with no engine behind them, for controllers tested without a window."""

from __future__ import annotations

from pathlib import Path

from app.library import HistoryIndex, Library
from app.paths import AppPaths
from app.session import EngineSession, LaunchOptions
from app.state import EngineInfo, HistoryState, JobsState, Settings


def bare_session(tmp_path: Path, jobs: JobsState | None = None) -> EngineSession:
    """A session that never starts an engine (its client stays None until a test sets one)."""
    return EngineSession(
        AppPaths(tmp_path / "data"),
        Settings(tmp_path / "settings.ini"),
        LaunchOptions(spawn_engine=False),
        EngineInfo(),
        jobs if jobs is not None else JobsState(),
    )


def bare_library(session: EngineSession) -> Library:
    """A library over an in-memory History index."""
    index = HistoryIndex(":memory:")
    return Library(session, index, HistoryState(index), session.jobs)
