"""The session file: saved soon after changes (not on every keystroke), whole, and offered
back only after an unclean exit."""

from __future__ import annotations

import json
from pathlib import Path

from app.main import create_window, parse_args
from app.session_store import SessionStore, restore, session_path


def _window(qtbot, data: Path):
    controller, win = create_window(parse_args(["--data-dir", str(data), "--no-engine"]))
    qtbot.addWidget(win)
    return controller, win


def test_saved_debounced_and_offered_back_only_after_an_unclean_exit(qtbot, tmp_path: Path):
    c, win = _window(qtbot, tmp_path)
    path = session_path(c.paths.data_dir)
    store = SessionStore(path, c, win, delay_ms=200)
    assert store.unclean() is None  # first start: nothing to offer
    store.begin()
    assert json.loads(path.read_text())["clean"] is False
    writes = []
    store.save_now = lambda clean=False, _orig=store.save_now: (writes.append(1), _orig(clean))
    store._timer.timeout.disconnect()
    store._timer.timeout.connect(store.save_now)
    for text in ("a", "a c", "a ca", "a cat"):  # typing
        c.generation.prompt = text
    c.video.start, c.video.end = 3, 9
    qtbot.waitUntil(
        lambda: json.loads(path.read_text())["generation"]["prompt"] == "a cat", timeout=3000
    )
    assert len(writes) == 1  # one write for the whole burst
    saved = json.loads(path.read_text())
    assert (saved["video"]["start"], saved["video"]["end"]) == (3, 9)
    assert not list(tmp_path.glob(".session.json.*.tmp"))  # the temporary file was renamed

    # killed now: the next start sees a running session and can put it back
    c2, win2 = _window(qtbot, tmp_path / "other")
    again = SessionStore(path, c2, win2)
    previous = again.unclean()
    assert previous is not None
    assert restore(c2, previous, win2) == []
    assert c2.generation.prompt == "a cat" and (c2.video.start, c2.video.end) == (3, 9)

    store.end_cleanly()  # a clean exit is never offered back
    assert SessionStore(path, c2).unclean() is None
    c.history.index.close()
    c2.history.index.close()


def test_a_damaged_file_or_missing_image_loses_nothing_else(qtbot, tmp_path: Path):
    c, _win = _window(qtbot, tmp_path)
    path = session_path(c.paths.data_dir)
    path.write_text("{ not json")
    assert SessionStore(path, c).unclean() is None
    data = {
        "version": 1,
        "clean": False,
        "generation": {"prompt": "kept", "steps": "many"},
        "canvas": {"paths": [str(tmp_path / "gone.png")], "current": 0},
    }
    lost = restore(c, data)
    assert c.generation.prompt == "kept"
    assert any("steps" in w for w in lost) and any("gone.png" in w for w in lost)
    c.history.index.close()


def test_a_running_jobs_previews_do_not_displace_the_images_shown_before(qtbot, tmp_path: Path):
    from app.state.canvas import CanvasImage

    c, win = _window(qtbot, tmp_path)
    png = tmp_path / "shown.png"
    png.write_bytes(b"not read back here")
    path = session_path(c.paths.data_dir)
    store = SessionStore(path, c, win)
    store.begin()
    c.canvas.show_images([CanvasImage(data=b"x", path=png)])
    store.save_now()
    c.canvas.follow_job("job-2", 4)  # a new job starts: previews only
    store.save_now()
    assert json.loads(path.read_text())["canvas"]["paths"] == [str(png)]
    c.history.index.close()
