"""Issue 14's soak leftover: what a long session keeps per image made must be bounded.

An artist who works all day makes thousands of images; the window must not keep a row, a
thumbnail or the PNG bytes of each. These tests drive finished jobs through the real controller
and window (offscreen, no engine: the events an engine sends), once to reach the steady state
and once more, and assert that the second run left no more objects behind than the first.
``History`` keeps :data:`app.state.history.PAGE` entries (lowered here so the test is quick), the
Queue :data:`app.state.jobs.KEEP_FINISHED` finished jobs, the thumbnail cache its byte cap, the
library the keys of its last :data:`app.library.KEEP_STORED` results.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import gc
import io
import tracemalloc
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QApplication

import app.library as library_module
import app.state.history as history_module
from app.state.jobs import KEEP_FINISHED
from app.ui.thumbnails import ThumbnailLoader
from engine.protocol import (
    JobFinished,
    JobPreview,
    JobQueued,
    JobResult,
    JobStarted,
    JobState,
    ResultImage,
)

from .test_controller import make_job, settle
from .test_window import window  # noqa: F401

PAGE = 24  # History's page, lowered from 300 so that a few dozen jobs overflow it
BATCH = 2
#: Types whose live count must not follow the number of images made.
WATCHED = (
    "HistoryEntry",
    "QListWidgetItem",
    "QImage",
    "QPixmap",
    "QIcon",
    "JobItem",
    "JobCard",
    "CanvasImage",
    "ResultImage",
    "GenerateParams",
    "PosixPath",
    "tuple",
    "partial",
    "_Job",
)


def png(i: int, size: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (i * 37 % 256, i * 91 % 256, i * 13 % 256)).save(buf, "PNG")
    return buf.getvalue()


async def make_jobs(window, first: int, count: int) -> None:  # noqa: F811
    """``count`` finished jobs of BATCH images each, as the engine reports them."""
    c = window.controller
    out = c.output_dir / "2026-12-06"
    out.mkdir(parents=True, exist_ok=True)
    for n in range(first, first + count):
        job_id = f"job{n:05d}"
        job = make_job(job_id, batch_size=BATCH)
        c.handle_event(JobQueued(job=job))
        c.handle_event(JobStarted(job_id=job_id))
        preview = base64.b64encode(png(n, 8)).decode()
        c.handle_event(JobPreview(job_id=job_id, step=2, width=8, height=8, png_b64=preview))
        results = []
        for i in range(BATCH):
            path = out / f"{job_id}-{i:03d}.png"
            path.write_bytes(png(n * BATCH + i))
            image = ResultImage(
                name=path.name, path=str(path), index=i, seed=n, width=64, height=64
            )
            c.handle_event(JobResult(job_id=job_id, image=image))
            results.append(image)
        await settle(c)
        c.handle_event(
            JobFinished(job=job.model_copy(update={"state": JobState.done, "results": results}))
        )
        await settle(c)
    window.history_panel.thumbs.wait()
    for _ in range(5):  # the thumbnails' queued deliveries
        QApplication.processEvents()
        await asyncio.sleep(0.01)


def live_counts() -> collections.Counter:
    # widgets let go by deleteLater() (Queue cards of trimmed jobs) are deleted by the loop
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()
    return collections.Counter(
        name for o in gc.get_objects() if (name := type(o).__qualname__) in WATCHED
    )


async def test_a_long_session_keeps_a_bounded_number_of_objects(window, monkeypatch):  # noqa: F811
    monkeypatch.setattr(history_module, "PAGE", PAGE)
    monkeypatch.setattr(library_module, "KEEP_STORED", 3 * PAGE, raising=False)
    thumbs = window.history_panel.thumbs
    thumbs.cache_bytes = 40 * 64 * 64 * 4  # forty 64×64 thumbnails
    c = window.controller
    warm = KEEP_FINISHED + PAGE  # jobs: the Queue's and the History's lists both full
    more = 40

    tracemalloc.start()  # from the start: what the second run frees of the first counts too
    await make_jobs(window, 0, warm)
    before, traced_before = live_counts(), tracemalloc.get_traced_memory()[0]
    await make_jobs(window, warm, more)
    after, traced_after = live_counts(), tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()

    made = (warm + more) * BATCH
    assert len(c.history.index) == made  # every image is still in the History's index…
    assert len(c.history.entries) == PAGE  # …and the list keeps the newest page
    assert c.history.entries[0].path.name == f"job{warm + more - 1:05d}-000.png"
    assert window.history_view.count() == PAGE
    assert len(window.history_panel._items) == PAGE
    assert thumbs.cached_bytes <= thumbs.cache_bytes
    assert len(c.jobs) == KEEP_FINISHED
    assert len(window.queue_panel.list.cards) == KEEP_FINISHED
    assert len(c.canvas.images) == BATCH
    assert len(c.library._stored) == 3 * PAGE

    grown = {k: after[k] - before[k] for k in WATCHED if after[k] - before[k] > 2}
    assert not grown, f"{more * BATCH} more images left these behind: {grown}"
    per_image = (traced_after - traced_before) / (more * BATCH)
    assert per_image < 1024, f"{per_image:.0f} bytes of Python memory kept per image made"


def test_the_thumbnail_cache_drops_the_least_recently_used(qapp, tmp_path: Path):
    loader = ThumbnailLoader(64, cache_bytes=3 * 64 * 64 * 4)
    paths = []
    for i in range(5):
        path = tmp_path / f"{i}.png"
        path.write_bytes(png(i))
        paths.append(str(path))
    for path in paths[:3]:
        loader.request(path)
        loader.wait()
        QApplication.processEvents()
    assert loader.cached(paths[0]) is not None  # used again: now the most recent
    for path in paths[3:]:
        loader.request(path)
        loader.wait()
        QApplication.processEvents()
    assert loader.cached_bytes <= loader.cache_bytes
    assert [p for p in paths if loader.cached(p) is not None] == [paths[0], paths[3], paths[4]]
    loader.max_items = 2  # and no more than the list shows
    loader.request(paths[1])
    loader.wait()
    QApplication.processEvents()
    assert [p for p in paths if loader.cached(p) is not None] == [paths[1], paths[4]]


@pytest.mark.parametrize("search", ["", "job"])
def test_history_keeps_a_page_while_searching_too(qapp, tmp_path: Path, monkeypatch, search):
    from app.library import HistoryIndex
    from app.state.history import HistoryState
    from engine.protocol import GenerateParams

    monkeypatch.setattr(history_module, "PAGE", 5)
    index = HistoryIndex(tmp_path / "h.sqlite3")
    state = HistoryState(index)
    state.load(search)
    for n in range(12):
        params = GenerateParams(prompt=f"job {n}", width=64, height=64, steps=4)
        state.add(index.add(tmp_path / f"{n}.png", params, created=float(n)))
    assert [e.prompt for e in state.entries] == [f"job {n}" for n in range(11, 6, -1)]
    assert len(index) == 12


async def test_a_queue_card_keeps_a_small_picture_not_the_result(window):  # noqa: F811
    from app.library import CARD_PICTURE

    c = window.controller
    out = c.output_dir / "2026-12-06"
    out.mkdir(parents=True, exist_ok=True)
    job = make_job("big")
    c.handle_event(JobQueued(job=job))
    c.handle_event(JobStarted(job_id="big"))
    path = out / "big-000.png"
    path.write_bytes(png(7, 512))
    image = ResultImage(name=path.name, path=str(path), index=0, seed=1, width=512, height=512)
    c.handle_event(JobResult(job_id="big", image=image))
    await settle(c)
    item = c.jobs.get("big")
    assert item.thumbnail_final
    with Image.open(io.BytesIO(item.thumbnail)) as im:
        assert max(im.size) == CARD_PICTURE  # not the 512² result
    card = window.queue_panel.card("big")
    assert card.thumb.pixmap() is not None and not card.thumb.pixmap().isNull()


def test_dialogs_and_menus_made_per_use_are_deleted_after_it(window):  # noqa: F811
    """Compare… (opened for every sampler grid), Settings, About and the canvas's right-click
    menu are made anew each time; with the window as their parent, closing them did not free
    them: every grid kept a whole Compare dialog (~125 KB native) for the rest of the session."""
    from PySide6.QtCore import QObject, QPoint
    from PySide6.QtWidgets import QMenu

    from .test_sampler_panel import SAMPLERS

    c = window.controller
    c.engine.samplers = SAMPLERS
    c.generation.sampler = "Euler"

    def use_each_once() -> None:
        compare = window.open_compare()
        assert compare is not None
        compare.set_samplers(["Euler", "DDIM"])
        compare.run_button.click()  # accepted: the grid job is asked for
        window.open_settings().reject()
        window.desktop.show_about().close()
        window.canvas.view.customContextMenuRequested.emit(QPoint(4, 4))
        (menu,) = [m for m in window.canvas.findChildren(QMenu, "canvas_menu") if m.isVisible()]
        menu.hide()

    def qt_objects() -> collections.Counter:
        QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        gc.collect()
        return collections.Counter(type(o).__name__ for o in window.findChildren(QObject))

    use_each_once()  # what is made once (e.g. cached styles) is made now
    before = qt_objects()
    for _ in range(5):
        use_each_once()
    kept = qt_objects() - before
    assert not kept, f"kept after they were closed: {dict(kept)}"
