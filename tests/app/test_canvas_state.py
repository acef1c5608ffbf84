from __future__ import annotations

from pathlib import Path

from app.state.canvas import CanvasImage, CanvasState


def test_previews_then_results_fill_the_slots(qapp):
    c = CanvasState()
    resets, updates, currents = [], [], []
    c.reset.connect(lambda: resets.append(1))
    c.updated.connect(updates.append)
    c.current_changed.connect(currents.append)
    c.follow_job("j", 2)
    assert len(c.images) == 2 and c.current == 0
    assert c.set_preview("j", 0, b"p0", step=3)
    assert c.current_image is not None and c.current_image.preview
    assert not c.set_preview("other", 0, b"x")  # not the followed job
    assert c.set_result("j", 0, b"r0", path=Path("/o/0.png"), seed=1, width=64, height=64)
    assert not c.set_preview("j", 0, b"late")  # a final image is never replaced by a preview
    assert c.images[0].data == b"r0" and c.images[0].ready
    c.set_result("j", 1, b"r1", seed=2)
    assert c.current == 1  # follows new arrivals until the user picks
    c.select(0)
    c.set_result("j", 1, b"r1b", seed=2)
    assert c.current == 0
    assert updates.count(0) == 2


def test_more_images_than_announced_grow_the_strip(qapp):
    c = CanvasState()
    c.follow_job("j", 1)
    c.set_result("j", 2, b"r2")
    assert len(c.images) == 3


def test_show_image_replaces_the_job(qapp):
    c = CanvasState()
    c.follow_job("j", 4)
    c.show_image(CanvasImage(data=b"h", path=Path("/h.png")))
    assert c.job_id == "" and len(c.images) == 1 and c.current == 0
    c.clear()
    assert c.current_image is None
