"""Issue 14: a PySide6 that loses references to None is refused at start, with a message."""

from __future__ import annotations

import logging
from pathlib import Path

from app import qt_check
from app.main import main


def test_the_installed_binding_keeps_none_alive():
    # Fails on PySide6 6.12.0 + Python 3.11 (it loses every one of the probe's references).
    assert qt_check.none_leak() == 0
    assert qt_check.check_binding() == ""


def test_a_leaking_binding_gets_a_message_a_person_can_act_on():
    assert qt_check.broken_binding_message(0) == ""
    text = qt_check.broken_binding_message(qt_check.PROBE_CALLS)
    assert "none_dealloc" in text and 'pip install "PySide6-Essentials<6.12"' in text
    assert "Python 3.12" in text


def test_main_refuses_to_start_on_a_leaking_binding(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(qt_check, "none_leak", lambda calls=qt_check.PROBE_CALLS: calls)
    root = logging.getLogger()
    before = list(root.handlers), root.level
    monkeypatch.setattr("app.logs.install_crash_hooks", lambda _path: None)
    try:
        code = main(["--data-dir", str(tmp_path), "--smoke-test", "5", "--no-engine"])
    finally:
        for h in root.handlers:
            if h not in before[0]:
                h.close()
        root.handlers[:] = before[0]
        root.setLevel(before[1])
    assert code == 2
    assert "cannot run with PySide6" in capsys.readouterr().err
    assert "refusing to start" in (tmp_path / "logs" / "sfumato.log").read_text()
