"""Issue 14: nothing that kills or troubles the app vanishes — it lands in the app's log file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys, threading
from pathlib import Path
from app.logs import install_crash_hooks, setup_app_logging
path = setup_app_logging(Path(sys.argv[1]), "WARNING")
install_crash_hooks(path)
from PySide6.QtCore import QCoreApplication, QTimer, qWarning
app = QCoreApplication([])
t = threading.Thread(target=lambda: 1 / 0, name="worker-7")
t.start(); t.join()
qWarning("a warning from Qt")
def slot():
    raise ValueError("raised in a Qt slot")
QTimer.singleShot(0, slot)
QTimer.singleShot(50, app.quit)
app.exec()
import faulthandler
faulthandler._sigabrt()   # a hard crash, as CPython's none_dealloc abort
"""


def test_uncaught_exceptions_qt_messages_and_hard_crashes_go_to_the_log(tmp_path: Path):
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode != 0  # it aborted at the end, as planned
    text = (tmp_path / "sfumato.log").read_text()
    assert "uncaught exception in thread worker-7" in text and "ZeroDivisionError" in text
    assert "qt WARNING: a warning from Qt" in text
    assert "uncaught exception" in text and "ValueError: raised in a Qt slot" in text
    assert "Fatal Python error: Aborted" in text and "Current thread" in text
