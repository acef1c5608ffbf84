"""Run the real app (``app.main.main``) in this process with a script of user actions.

For tests that need the app as a separate process (killing it, restarting it):
``python -m tests.support.app_driver SCRIPT -- <sfumato arguments>``. The script's steps run
on Qt timers inside the app's own event loop; it reports on stdout with ``DRIVER <word> …``
lines the test waits for. Scripts:

- ``work <image.png> <clip.mp4>``: type a prompt and settings, switch uncertainty on, open a
  saved image on the canvas, open a clip and pick its frames 2–10 every 2nd; once
  session.json holds all of it, print ``DRIVER saved`` and keep running (to be killed).
- ``restore``: answer the "closed unexpectedly" question with Restore, wait for the clip and
  its range to come back, print ``DRIVER restored <json>``, close the window (a clean exit).
- ``fresh``: print ``DRIVER asked`` if the question comes, ``DRIVER not-asked`` otherwise;
  close the window.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox


def say(*words: object) -> None:
    print("DRIVER", *words, flush=True)


def main_window():
    from app.ui.main_window import MainWindow

    return next(
        (w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()),
        None,
    )


def poll(check, every_ms: int = 100) -> None:
    """Call ``check`` every ``every_ms`` until it returns True."""
    timer = QTimer()
    timer.setInterval(every_ms)

    def tick() -> None:
        try:
            done = check()
        except Exception as exc:  # noqa: BLE001 - a test must see what went wrong
            say("error", repr(exc))
            done = True
        if done:
            timer.stop()

    timer.timeout.connect(tick)
    timer.start()
    poll.timers.append(timer)


poll.timers = []


def work(image: str, clip: str) -> None:
    data_dir = Path(sys.argv[sys.argv.index("--data-dir") + 1])
    stage = {"n": 0}

    def step() -> bool:
        w = main_window()
        if w is None:
            return False
        c = w.controller
        if stage["n"] == 0 and c.engine.connection.usable:
            w.desktop.open_file(Path(image))  # restores the image's recipe: settings after
            w.prompt_edit.setPlainText("a lighthouse in the fog, oil painting")
            c.generation.steps, c.generation.seed = 17, 1234
            c.generation.set_option("uncertainty", True)
            c.uncertainty_view.colormap = "cividis"
            w.open_video(Path(clip))
            stage["n"] = 1
        elif stage["n"] == 1 and c.video.preview is not None and c.canvas.current_image:
            panel = w.video_panel
            panel.start_spin.setValue(2)
            panel.end_spin.setValue(10)
            panel.stride_spin.setValue(2)
            panel.target_prompt_edit.setPlainText("t-rex on a blue background")
            stage["n"] = 2
        elif stage["n"] == 2:
            try:
                saved = json.loads((data_dir / "session.json").read_text())
            except (OSError, ValueError):
                return False
            v = saved["video"]
            if (
                saved["generation"]["prompt"].startswith("a lighthouse")
                and saved["canvas"]["paths"]
                and (v["start"], v["end"], v["stride"]) == (2, 10, 2)
                and v["target_prompt"] == "t-rex on a blue background"
            ):
                say("saved")
                return True
        return False

    poll(step)


def answer_question(accept: bool, report) -> None:
    start = time.monotonic()

    def step() -> bool:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox) and box.objectName() == "RestoreSession":
            say("asked", json.dumps(box.text() + " | " + box.informativeText()))
            label = "Restore" if accept else "Start fresh"
            next(b for b in box.buttons() if b.text() == label).click()
            report(True)
            return True
        if main_window() is not None and time.monotonic() - start > 3:
            report(False)
            return True
        return False

    poll(step)


def restore() -> None:
    def after(asked: bool) -> None:
        if not asked:
            say("not-asked")

        def check() -> bool:
            w = main_window()
            if w is None:
                return False
            c, v = w.controller, w.controller.video
            if v.source is None or v.preview is None or (v.start, v.end) != (2, 10):
                return False
            image = c.canvas.current_image
            state = {
                "prompt": c.generation.prompt,
                "steps": c.generation.steps,
                "seed": c.generation.seed,
                "uncertainty": c.generation.option("uncertainty"),
                "colormap": c.uncertainty_view.colormap,
                "canvas": str(image.path) if image is not None and image.path else "",
                "clip": v.source_path,
                "range": [v.start, v.end, v.stride],
                "target_prompt": v.target_prompt,
                "video_dock": w.video_dock.isVisible(),
            }
            say("restored", json.dumps(state))
            w.close()
            return True

        poll(check)

    answer_question(True, after)


def fresh() -> None:
    def after(asked: bool) -> None:
        if not asked:
            say("not-asked")
        QTimer.singleShot(200, lambda: main_window() and main_window().close())

    answer_question(False, after)


if __name__ == "__main__":
    split = sys.argv.index("--")
    script, script_args, app_args = sys.argv[1], sys.argv[2:split], sys.argv[split + 1 :]
    sys.argv = [sys.argv[0], *app_args]
    qt = QApplication([sys.argv[0]])
    {"work": work, "restore": restore, "fresh": fresh}[script](*script_args)
    from app.main import main

    sys.exit(main(app_args))
