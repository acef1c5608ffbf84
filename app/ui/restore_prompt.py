""" "Sfumato closed unexpectedly — restore?": the question asked after an unclean exit."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtWidgets import QMessageBox, QWidget

TITLE = "Sfumato closed unexpectedly"


def describe(data: dict[str, Any]) -> str:
    """A line or two saying what the saved session holds, so the choice is an informed one."""
    parts = []
    prompt = str((data.get("generation") or {}).get("prompt") or "").strip()
    if prompt:
        parts.append(f"the prompt “{prompt[:60]}{'…' if len(prompt) > 60 else ''}”")
    shown = len((data.get("canvas") or {}).get("paths") or [])
    if shown:
        parts.append(f"{shown} image{'s' if shown != 1 else ''} on the canvas")
    clip = str((data.get("video") or {}).get("source_path") or "")
    if clip:
        parts.append(f"the video {clip.rsplit('/', 1)[-1]} and its frame range")
    saved = data.get("saved_at")
    when = f" (saved {time.strftime('%H:%M:%S', time.localtime(saved))})" if saved else ""
    what = ", ".join(parts) if parts else "your settings"
    return f"Restore the last session{when}? It holds {what}."


def ask_restore(parent: QWidget | None, data: dict[str, Any]) -> bool:
    """Ask; True for Restore. Escape or closing the box answers Start fresh."""
    box = QMessageBox(QMessageBox.Icon.Question, TITLE, f"{TITLE} — restore?", parent=parent)
    box.setObjectName("RestoreSession")
    box.setInformativeText(
        describe(data) + "\n\nThe details of what happened are in Help → Open log folder."
    )
    restore = box.addButton("Restore", QMessageBox.ButtonRole.AcceptRole)
    box.addButton("Start fresh", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(restore)
    box.exec()
    return box.clickedButton() is restore
