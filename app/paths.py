"""Where the app keeps its files: data folder (history, engine data), outputs and settings."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "Sfumato"


@dataclass(frozen=True)
class AppPaths:
    """All per-user folders in one place; ``SFUMATO_DATA_DIR`` or ``--data-dir`` moves them all."""

    data_dir: Path
    #: Where log files go; None = platformdirs' user_log_dir, or <data_dir>/logs (see default).
    log_dir: Path | None = None

    @classmethod
    def default(cls, data_dir: Path | str | None = None) -> AppPaths:
        if data_dir is None:
            data_dir = os.environ.get("SFUMATO_DATA_DIR") or None
        log_dir: Path | None = None
        if os.environ.get("SFUMATO_LOG_DIR"):
            log_dir = Path(os.environ["SFUMATO_LOG_DIR"]).expanduser().resolve()
        if data_dir is None:
            from platformdirs import user_data_dir, user_log_dir

            data_dir = user_data_dir(APP_NAME, appauthor=False)
            log_dir = log_dir or Path(user_log_dir(APP_NAME, appauthor=False))
        return cls(Path(data_dir).expanduser().resolve(), log_dir)

    @property
    def outputs(self) -> Path:
        """Default folder for generated images (the user may pick another in Settings)."""
        return self.data_dir / "outputs"

    @property
    def engine_data(self) -> Path:
        """The local engine's data directory: its job database and caches."""
        return self.data_dir / "engine"

    @property
    def history_db(self) -> Path:
        return self.data_dir / "history.sqlite3"

    @property
    def settings_file(self) -> Path:
        return self.data_dir / "settings.ini"

    @property
    def logs(self) -> Path:
        """The app's and the local engine's log files (rotated)."""
        return self.log_dir if self.log_dir is not None else self.data_dir / "logs"

    @property
    def models(self) -> Path:
        """A models folder the app always offers to the engine (users drop checkpoints here)."""
        return self.data_dir / "models"

    def ensure(self) -> None:
        for folder in (self.data_dir, self.outputs, self.engine_data, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
