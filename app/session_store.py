"""The working session, saved as it changes and offered back after a crash (issue 14).

What a person would hate to lose when the window dies — the prompt and every generation setting
(sampler toggles and uncertainty options included), how maps are drawn, the Video panel's clip,
frame range, prompts and options, the images on the canvas, the dock layout — is written to
``<data dir>/session.json`` half a second after it last changed (debounced: typing a prompt
writes once), atomically (a temporary file renamed over the old one, so a kill mid-write
leaves the previous version whole).

The file also says whether the session ended cleanly. :meth:`SessionStore.begin` marks it
running; a clean exit (:meth:`SessionStore.end_cleanly`) marks it closed. A session found
still "running" at the next start ended in a crash, a kill or a power cut: the app asks
"Sfumato closed unexpectedly — restore?" (app/ui/restore_prompt.py) and, on yes,
:func:`restore` puts it back. A clean exit is never offered back.

The file holds plain JSON values, read back field by field: a field that no longer exists or
does not validate is skipped, never fatal.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer

from .state.generation import FIELDS as GENERATION_FIELDS

if TYPE_CHECKING:
    from .controller import AppController

log = logging.getLogger(__name__)

SESSION_FILE = "session.json"
VERSION = 1
#: Debounce: a save happens this long after the last change.
SAVE_DELAY_MS = 500

#: The Video panel's settings a session keeps (the clip itself by its path on this machine).
VIDEO_FIELDS = (
    "start",
    "end",
    "stride",
    "source_prompt",
    "target_prompt",
    "edit_phrase",
    "negative_prompt",
    "edit_type",
    "method",
    "control_type",
    "low_threshold",
    "high_threshold",
    "control_scale",
    "controlnet",
    "annotator",
    "width",
    "height",
    "fit",
    "steps",
    "cfg_scale",
    "seed",
    "window",
    "smoothing",
    "interpolator",
    "rife_weights",
    "tuning_steps",
    "learning_rate",
)
#: Set after the clip is back: opening a clip resets its range, and sizes it for the model.
VIDEO_AFTER_UPLOAD = ("start", "end", "stride", "width", "height")


def session_path(data_dir: Path) -> Path:
    return data_dir / SESSION_FILE


# ------------------------------------------------------------------ snapshot and restore
def snapshot(c: AppController, window_state: bytes | None = None) -> dict[str, Any]:
    """Everything the session keeps, as JSON-ready values."""
    g = c.generation
    generation = {name: getattr(g, name) for name in GENERATION_FIELDS}
    generation["model"] = g.model
    v = c.video
    canvas_paths = [str(im.path) for im in c.canvas.images if im.ready and im.path is not None]
    current = c.canvas.current_image
    return {
        "version": VERSION,
        "generation": generation,
        "options": _jsonable(g.options),
        "uncertainty_view": {
            n: getattr(c.uncertainty_view, n) for n in c.uncertainty_view.properties()
        },
        "video": {"source_path": v.source_path, **{n: getattr(v, n) for n in VIDEO_FIELDS}},
        "canvas": {
            "paths": canvas_paths,
            "current": canvas_paths.index(str(current.path))
            if current is not None and str(current.path) in canvas_paths
            else 0,
        },
        "window_state": base64.b64encode(window_state).decode("ascii") if window_state else "",
    }


def restore(c: AppController, data: dict[str, Any], window=None) -> list[str]:
    """Put a saved session back; returns what could not be restored, in plain words."""
    lost: list[str] = []
    g = c.generation
    for name, value in (data.get("generation") or {}).items():
        if name in (*GENERATION_FIELDS, "model"):
            _set(g, name, value, lost, "setting")
    for name, value in (data.get("options") or {}).items():
        g.set_option(name, value)
    for name, value in (data.get("uncertainty_view") or {}).items():
        if name in c.uncertainty_view.properties():
            _set(c.uncertainty_view, name, value, lost, "map setting")
    _restore_canvas(c, data.get("canvas") or {}, lost)
    if window is not None and data.get("window_state"):
        from PySide6.QtCore import QByteArray

        window.restoreState(QByteArray(base64.b64decode(data["window_state"])))
    _restore_video(c, data.get("video") or {}, lost)
    return lost


def _set(obj: Any, name: str, value: Any, lost: list[str], what: str) -> None:
    try:
        setattr(obj, name, value)
    except (TypeError, ValueError):
        lost.append(f"the {what} '{name}'")


def _restore_canvas(c: AppController, canvas: dict[str, Any], lost: list[str]) -> None:
    from .recipe import RecipeError, recipe_from_file
    from .state.canvas import CanvasImage

    images = []
    for text in canvas.get("paths") or []:
        path = Path(text)
        if not path.is_file():
            lost.append(f"{path.name} (no longer on disk)")
            continue
        entry = c.library.index.get(path)
        try:
            params = entry.params if entry is not None else recipe_from_file(path)
        except RecipeError:
            params = None
        images.append(
            CanvasImage(
                data=path.read_bytes(),
                path=path,
                params=params,
                seed=entry.seed if entry is not None else (params.seed if params else None),
                width=entry.width if entry is not None else 0,
                height=entry.height if entry is not None else 0,
            )
        )
    if images:
        c.canvas.show_images(images, int(canvas.get("current") or 0))


def _restore_video(c: AppController, video: dict[str, Any], lost: list[str]) -> None:
    v = c.video
    for name in VIDEO_FIELDS:
        if name in video and name not in VIDEO_AFTER_UPLOAD:
            _set(v, name, video[name], lost, "video setting")
    source = video.get("source_path") or ""
    if not source:  # no clip to wait for
        for name in VIDEO_AFTER_UPLOAD:
            if name in video:
                _set(v, name, video[name], lost, "video setting")
        return
    if not Path(source).is_file():
        lost.append(f"the clip {Path(source).name} (no longer on disk)")
        return
    after = {n: video[n] for n in VIDEO_AFTER_UPLOAD if n in video}

    def reapply(_info: object) -> None:
        if v.source is None or v.source_path != source:
            return
        v.source_changed.disconnect(reapply)
        for name, value in after.items():
            _set(v, name, value, lost, "video setting")
        c.video_jobs.refresh_preview()

    v.source_changed.connect(reapply)
    # The clip goes to the engine once one answers (at start-up it is still starting).
    if c.engine.connection.usable:
        c.video_jobs.open_video(source)
        return

    def when_usable(_state: object) -> None:
        if c.engine.connection.usable:
            c.engine.connection_changed.disconnect(when_usable)
            c.video_jobs.open_video(source)

    c.engine.connection_changed.connect(when_usable)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# ------------------------------------------------------------------ the file
class SessionStore(QObject):
    """Watches the state objects and keeps ``session.json`` current (see the module's doc)."""

    def __init__(
        self, path: Path, controller: AppController, window=None, delay_ms: int = SAVE_DELAY_MS
    ):
        super().__init__(controller)
        self.path = Path(path)
        self.controller = controller
        self.window = window
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self.save_now)
        self._previous = self._read()
        self._running = False
        self._last_canvas: dict[str, Any] | None = None

    def _read(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def unclean(self) -> dict[str, Any] | None:
        """The previous session, if it did not end cleanly (else None)."""
        prev = self._previous
        if prev is None or prev.get("clean", True) or prev.get("version") != VERSION:
            return None
        return prev

    def begin(self) -> None:
        """Mark this session running and save on every change from now on."""
        c = self.controller
        for obj in (c.generation, c.uncertainty_view, c.video):
            names = VIDEO_FIELDS + ("source_path",) if obj is c.video else obj.properties()
            for name in names:
                getattr(obj, f"{name}_changed").connect(self.schedule)
        c.generation.options_changed.connect(self.schedule)
        c.canvas.reset.connect(self.schedule)
        c.canvas.updated.connect(self.schedule)
        c.canvas.current_changed.connect(self.schedule)
        self._running = True
        self.save_now()

    def schedule(self, *_args: object) -> None:
        """Something changed: save within the delay. The timer is not restarted by later
        changes, so a stream of them (previews every quarter second) still saves."""
        if self._running and not self._timer.isActive():
            self._timer.start()

    def save_now(self, clean: bool = False) -> None:
        self._timer.stop()
        state = bytes(self.window.saveState().data()) if self.window is not None else None
        data = snapshot(self.controller, state)
        # While a new job's previews fill the canvas, the images shown before it are what a
        # restart should bring back (the job itself resumes in the engine's queue).
        if data["canvas"]["paths"] or not self.controller.canvas.job_id:
            self._last_canvas = data["canvas"]
        elif self._last_canvas is not None:
            data["canvas"] = self._last_canvas
        data.update(clean=clean, pid=os.getpid(), saved_at=time.time())
        try:
            write_atomic(self.path, json.dumps(data, indent=1, default=str))
        except OSError as exc:  # a full or read-only disk must not stop the app
            log.warning("could not save the session to %s: %s", self.path, exc)

    def end_cleanly(self) -> None:
        """A clean exit: save the last state, marked so that it is not offered back."""
        if self._running:
            self.save_now(clean=True)
            self._running = False


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader (or a killed app) sees the old or the new
    file, never half of one. No fsync: this runs on the UI thread several times a minute, and
    what it guards against is the app dying, after which the OS still writes the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
