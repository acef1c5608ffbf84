"""Refuse a Qt binding that corrupts Python's reference counts (issue 14).

PySide6 6.12.0 on CPython 3.11 drops one reference to ``None`` on every Qt call that returns
None (``QListWidgetItem.data()`` for an unset role, void methods such as ``setToolTip``). After
enough UI updates ``None``'s count reaches zero and CPython aborts with "Fatal Python error:
none_dealloc", taking the window and everything unsaved with it. From Python 3.12 ``None`` is
immortal (PEP 683) and the same wheel is harmless; PySide6 6.11.x is clean on 3.11.

pyproject.toml keeps pip from installing the broken combination; :func:`none_leak` checks the
running one at start-up, by *measuring* the bug rather than trusting a version list, so a later
wheel with the same fault is caught too and a fixed one is not refused.
"""

from __future__ import annotations

import gc
import sys

#: Calls the probe makes; a leaking binding loses exactly one reference per call.
PROBE_CALLS = 200
#: The first PySide6 release seen to leak (for the message; the probe decides).
BROKEN_SINCE = "6.12.0"


def none_leak(calls: int = PROBE_CALLS) -> int:
    """References to ``None`` lost by ``calls`` Qt calls that return None (0 on a sound
    binding, ``calls`` on a leaking one; always 0 where ``None`` is immortal). Needs no
    QApplication: plain QObject methods leak the same way."""
    from PySide6.QtCore import QObject

    probe = QObject()
    gc.collect()
    before = sys.getrefcount(None)
    for _ in range(calls):
        probe.setObjectName("sfumato-refcount-probe")  # a void method: returns None
    after = sys.getrefcount(None)
    probe.deleteLater()
    return max(0, before - after)


def broken_binding_message(lost: int, calls: int = PROBE_CALLS) -> str:
    """What a person reads when the check refuses to start; empty when ``lost`` is harmless."""
    if lost < calls // 2:
        return ""
    import PySide6

    py = ".".join(map(str, sys.version_info[:3]))
    return (
        f"Sfumato cannot run with PySide6 {PySide6.__version__} on Python {py}: this PySide6 "
        f"loses a reference to Python's None on every Qt call ({lost} of {calls} in a test), "
        'and after a few minutes Python aborts ("Fatal Python error: none_dealloc") and '
        "everything unsaved is lost.\n\n"
        "Fix it with one of:\n"
        f'  pip install "PySide6-Essentials<{BROKEN_SINCE.rsplit(".", 1)[0]}"   '
        "(PySide6 6.11 works on Python 3.11)\n"
        "  or use Python 3.12 or newer, where this PySide6 is safe.\n\n"
        "pip install -e . picks a safe version by itself (see pyproject.toml)."
    )


def check_binding() -> str:
    """The refusal message for the running Python + PySide6, or "" when they are safe."""
    return broken_binding_message(none_leak())
