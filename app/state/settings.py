"""User settings, saved in an INI file through QSettings as soon as they change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

from .observable import Observable, Property

LOCAL, REMOTE = "local", "remote"
SYSTEM, DARK, LIGHT = "system", "dark", "light"
MAX_RECENT = 10
#: The layout of the settings file. 2: ``last_params`` holds a recipe v2 (grouped options).
#: A file without ``schema_version`` is 1. To change a key: bump this, add a step below.
SETTINGS_VERSION = 2


def _v1_to_v2(values: dict[str, Any]) -> dict[str, Any]:
    """``last_params`` written flat (recipe v1) → grouped (v2); a damaged one is dropped."""
    from engine.protocol import fold_flat_uncertainty

    raw = values.get("last_params")
    if isinstance(raw, str) and raw:
        try:
            values["last_params"] = json.dumps(fold_flat_uncertainty(json.loads(raw)))
        except (ValueError, TypeError, AttributeError):
            values["last_params"] = ""
    return values


#: version → the step to the next one, on ``{key: stored value}`` (what the file holds).
SETTINGS_MIGRATIONS = {1: _v1_to_v2}


class Settings(Observable):
    """Persistent preferences. Every :class:`Property` here is loaded at start and saved on set."""

    engine_mode = Property(LOCAL, doc="'local': start an engine here; 'remote': connect to one")
    remote_url = Property("http://127.0.0.1:8765")
    remote_token = Property("")
    output_dir = Property("", doc="Where images are saved; '' = the data folder's outputs/")
    model = Property("", doc="Model id to load at start; '' = the engine's default")
    models_dirs = Property[list[str]]([], doc="Extra folders the local engine scans for models")
    last_params = Property("", doc="The Prompt dock's settings at exit, as GenerateParams JSON")
    engine_python = Property(
        "",
        doc="Python that runs the local engine; '' = this app's own "
        "(the packaged app needs one: see packaging/README.md)",
    )
    theme = Property(
        SYSTEM, doc="'system' follows the desktop's light/dark scheme; or 'dark', 'light'"
    )
    first_run_done = Property(False, doc="The first-run dialog was shown and closed")
    recent_files = Property[list[str]]([], doc="Images opened or dropped, newest first")
    fast_path = Property(
        True,
        doc="Let the engine use its compiled fast path (on with CUDA); off: every job runs eager",
    )
    offload = Property(
        "none",
        doc="Memory placement asked for when a model loads: 'none', "
        "'t5-cpu' (SD3/Flux's T5 on the CPU) or 'model' (model CPU "
        "offload); engine/models/placement.py",
    )

    def __init__(self, path: Path | str | None = None):
        super().__init__()
        if path is None:
            self._qs = QSettings("Sfumato", "Sfumato")
        else:
            self._qs = QSettings(str(path), QSettings.Format.IniFormat)
        self._migrate()
        for name in self.properties():
            stored = self._qs.value(name)
            if stored is not None:
                try:
                    setattr(self, name, self._decode(name, stored))
                except (TypeError, ValueError):
                    pass  # a damaged entry falls back to the default
            getattr(self, f"{name}_changed").connect(lambda v, n=name: self._save(n, v))

    def _migrate(self) -> None:
        """Bring an older settings file to :data:`SETTINGS_VERSION`, step by step, in place.
        A file from a newer Sfumato is read as it is (unknown keys are ignored)."""
        keys = self._qs.allKeys()
        try:
            version = int(self._qs.value("schema_version", 1 if keys else SETTINGS_VERSION))
        except (TypeError, ValueError):
            version = 1
        if version < SETTINGS_VERSION:
            values = {k: self._qs.value(k) for k in keys if k != "schema_version"}
            while version < SETTINGS_VERSION:
                values = SETTINGS_MIGRATIONS[version](values)
                version += 1
            for key, value in values.items():
                self._qs.setValue(key, value)
        if version <= SETTINGS_VERSION:
            self._qs.setValue("schema_version", SETTINGS_VERSION)

    def _decode(self, name: str, stored: Any) -> Any:
        default = type(self).__dict__.get(name) or next(
            k.__dict__[name] for k in type(self).__mro__ if name in k.__dict__
        )
        if isinstance(default.default, list):
            return list(json.loads(stored)) if isinstance(stored, str) else list(stored)
        if isinstance(default.default, bool):  # INI files hold "true"/"false" strings
            return stored if isinstance(stored, bool) else str(stored).lower() in ("true", "1")
        return type(default.default)(stored)

    def _save(self, name: str, value: Any) -> None:
        # No sync() here: writing the file (with an fsync) on the UI thread can stall it on a
        # busy disk; QSettings writes changes out later, and sync() runs at exit.
        self._qs.setValue(name, json.dumps(value) if isinstance(value, list) else value)

    def sync(self) -> None:
        """Write pending changes to disk now (at exit)."""
        self._qs.sync()

    def add_recent(self, path: Path | str) -> None:
        """Put ``path`` first in the recent files (no duplicates, at most MAX_RECENT)."""
        text = str(Path(path).expanduser().resolve())
        self.recent_files = [text, *[p for p in self.recent_files if p != text]][:MAX_RECENT]

    # Window layout is opaque bytes; kept out of the observable properties.
    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        geo, state = self._qs.value("window/geometry"), self._qs.value("window/state")
        return (
            geo if isinstance(geo, QByteArray) else None,
            state if isinstance(state, QByteArray) else None,
        )

    def save_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self._qs.setValue("window/geometry", geometry)
        self._qs.setValue("window/state", state)
