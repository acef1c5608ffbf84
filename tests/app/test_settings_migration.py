"""Settings files carry a schema version; older ones are migrated step by step when read."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QSettings

from app.state.settings import SETTINGS_VERSION, Settings
from engine.protocol import GenerateParams


def _ini(path: Path, **values) -> Path:
    qs = QSettings(str(path), QSettings.Format.IniFormat)
    for key, value in values.items():
        qs.setValue(key, value)
    qs.sync()
    return path


def test_a_v1_file_is_migrated_and_its_last_recipe_kept(tmp_path):
    flat = {
        "prompt": "kept",
        "sampler": "DDIM",
        "uncertainty": True,
        "uncertainty_samples": 7,
        "variation_step": 3,
    }
    path = _ini(tmp_path / "v1.ini", last_params=json.dumps(flat), theme="dark")
    s = Settings(path)
    assert s.theme == "dark"
    grouped = json.loads(s.last_params)
    assert "uncertainty_samples" not in grouped and grouped["uncertainty"]["samples"] == 7
    p = GenerateParams.model_validate_json(s.last_params)
    assert (p.prompt, p.uncertainty.samples, p.uncertainty.variation_step) == ("kept", 7, 3)
    s.sync()
    assert (
        int(QSettings(str(path), QSettings.Format.IniFormat).value("schema_version"))
        == SETTINGS_VERSION
        == 2
    )


def test_a_damaged_last_recipe_is_dropped_and_new_files_start_current(tmp_path):
    s = Settings(_ini(tmp_path / "bad.ini", last_params="{not json"))
    assert s.last_params == ""
    fresh = Settings(tmp_path / "new.ini")
    fresh.sync()
    assert (
        int(
            QSettings(str(tmp_path / "new.ini"), QSettings.Format.IniFormat).value("schema_version")
        )
        == SETTINGS_VERSION
    )
