"""The uncertainty state, the canvas heatmap and the Uncertainty panel (no engine)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.state.canvas import CanvasImage, CanvasState
from app.state.uncertainty import (
    UncertaintyMap,
    colorize,
    cost_text,
    display_range,
    find_map,
    load_map,
    lut,
    map_path,
    most_certain_first,
)
from engine.protocol import FitInfo, GenerateParams, SamplerInfo, utcnow

from .test_window import window  # noqa: F401


def png(colour=(200, 30, 30), size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def umap(values, score=None) -> UncertaintyMap:
    values = np.asarray(values, dtype=np.float32)
    score = float(values.mean()) if score is None else score
    return UncertaintyMap(values, score, float(values.min()), float(values.max()))


# --------------------------------------------------------------------------- state
def test_maps_load_colour_and_rank(tmp_path: Path):
    values = np.linspace(0, 0.02, 64, dtype=np.float32).reshape(8, 8)
    image = tmp_path / "a-000.png"
    image.write_bytes(png())
    assert find_map(image) is None
    np.save(map_path(image), values)
    assert map_path(image).name == "a-000.uncertainty.npy"
    m = find_map(image)
    assert m is not None and m.score == pytest.approx(values.mean())
    assert (m.vmin, m.vmax) == (0.0, pytest.approx(0.02))
    assert m.value_at(7.5, 0.2) == pytest.approx(values[0, 7]) and m.value_at(8, 0) is None
    np.save(map_path(image), np.zeros((2, 2, 3)))
    with pytest.raises(ValueError):
        load_map(map_path(image))
    assert find_map(image) is None  # unreadable: no map rather than a crash

    rgb = colorize(values, 0.0, 0.02, "viridis")
    table = lut("viridis")
    assert rgb.shape == (8, 8, 3)
    assert (rgb[0, 0] == table[0]).all() and (rgb[7, 7] == table[-1]).all()
    assert not (colorize(values, 0.0, 0.04, "viridis")[7, 7] == table[-1]).all()  # range counts

    low, high = umap([[0.0, 0.01]]), umap([[0.02, 0.05]])
    assert display_range([low, high], low, "image") == pytest.approx((0.0, 0.01))
    assert display_range([low, None, high], low, "batch") == pytest.approx((0.0, 0.05))
    assert most_certain_first([0.3, None, 0.1, 0.2]) == [2, 3, 0, 1]
    assert "2.0×" in cost_text(5, 5, 8) and "8 extra VAE decodes" in cost_text(5, 5, 8)


def test_canvas_sorts_keeps_and_restores_by_certainty(qapp):
    state = CanvasState()
    images = [
        CanvasImage(data=png(), seed=i, uncertainty=umap([[s]]))
        for i, s in enumerate((0.3, 0.1, 0.2, 0.4))
    ]
    state.show_images(images, current=0)
    assert state.sort_most_certain()
    assert [im.seed for im in state.images] == [1, 2, 0, 3]
    assert state.current_image.seed == 0  # the image shown stays shown
    assert state.keep_most_certain(2)
    assert [im.seed for im in state.images] == [1, 2] and len(state.hidden) == 2
    state.show_all()
    assert sorted(im.seed for im in state.images) == [0, 1, 2, 3] and not state.hidden
    # a job still running is not re-ordered under its own slot indices
    state.follow_job("job", 2)
    state.set_result("job", 0, png(), seed=5, uncertainty=umap([[0.5]]))
    assert not state.sort_most_certain()
    state.set_result("job", 1, png(), seed=6, uncertainty=umap([[0.1]]))
    assert state.sort_most_certain() and [im.seed for im in state.images] == [6, 5]


# --------------------------------------------------------------------------- window
def test_overlay_legend_hover_and_layouts(window, qtbot):  # noqa: F811
    c = window.controller
    canvas = window.canvas
    values = np.zeros((8, 8), np.float32)
    values[2, 5] = 0.01
    images = [
        CanvasImage(
            data=png(),
            seed=1,
            width=8,
            height=8,
            params=GenerateParams(steps=10),
            uncertainty=umap(values),
        ),
        CanvasImage(
            data=png(),
            seed=2,
            width=8,
            height=8,
            params=GenerateParams(steps=10),
            uncertainty=umap(np.full((8, 8), 0.04, np.float32)),
        ),
    ]
    c.canvas.show_images(images)
    assert canvas.view.heatmap_shown and canvas.legend.isVisible()
    lo, hi, name = canvas.legend.texts()
    assert (lo, hi, name) == ("0.0000", "0.0100", "Viridis")
    assert "uncertainty" in canvas.caption.text()
    c.uncertainty_view.range_mode = "batch"
    assert canvas.legend.texts()[1] == "0.0400"
    canvas._on_hover(5.5, 2.5)
    assert "uncertainty 0.0100 at (5, 2)" == canvas.legend.readout
    scene_w = canvas.view.sceneRect().width()
    c.uncertainty_view.layout = "side"
    assert canvas.view.sceneRect().width() > 2 * scene_w
    from PySide6.QtCore import QPointF

    assert canvas.view.image_pixel(QPointF(8 * 1.04 + 5.5, 2.5)) == pytest.approx((5.5, 2.5))
    c.uncertainty_view.show_map = False
    assert not canvas.view.heatmap_shown and not canvas.legend.isVisible()
    c.uncertainty_view.show_map = True
    c.canvas.show_images([CanvasImage(data=png(), seed=3)])
    assert not canvas.view.heatmap_shown  # an image without a map shows none


def test_panel_edits_the_recipe_and_exports(window, qtbot, tmp_path):  # noqa: F811
    c = window.controller
    panel = window.uncertainty_panel
    g = c.generation
    c.engine.samplers = [
        SamplerInfo(name="DDIM", description="DDIM.", uncertainty=True),
        SamplerInfo(
            name="Euler",
            description="Euler.",
            uncertainty_note="BayesDiff propagates variance only through DDIM and DPM2",
        ),
    ]
    c.fits.model = "tiny"
    g.sampler = "Euler"
    assert not panel.samples_spin.isEnabled()
    panel.enable_toggle.click()
    assert g.to_params().uncertainty.map is True
    assert panel.warning_box.isVisibleTo(panel) and "DPM2" in panel.sampler_warning.text()
    sampler_item = window.sampler_panel.sampler_list.item(1)
    from app.ui.sampler_dock import DIM_ROLE, TAG_ROLE

    assert sampler_item.data(DIM_ROLE) and sampler_item.data(TAG_ROLE) == "no uncertainty"
    assert "No posterior" in panel.error_label.text()
    panel.use_ddim_button.click()
    assert g.sampler == "DDIM" and not panel.warning_box.isVisibleTo(panel)
    c.fits.fits = [
        FitInfo(
            id="u",
            kind="uncertainty",
            model="tiny",
            model_hash="h",
            images=320,
            created_at=utcnow(),
            source="fitset",
        )
    ]
    assert not panel.error_label.isVisibleTo(panel)
    assert "fitted on 320 images" in panel.fit_row.status.text().lower()
    panel.samples_spin.setValue(10)
    panel.skip_spin.setValue(2)
    p = g.to_params()
    assert (p.uncertainty.samples, p.uncertainty.skip, p.uncertainty.decodes) == (10, 2, 8)
    assert "6.0×" in panel.cost_label.text()
    # the score: BayesDiff's latent sum by default, the decodes' pixel mean as the option
    assert p.uncertainty.score == "latent" and panel.score_combo.currentData() == "latent"
    panel.score_combo.setCurrentIndex(panel.score_combo.findData("pixel"))
    panel.score_combo.activated.emit(panel.score_combo.currentIndex())
    assert g.to_params().uncertainty.score == "pixel"
    requested: list[str] = []
    panel.fit_requested.connect(requested.append)
    panel.fit_row.fit_button.click()
    assert requested == ["uncertainty"]

    # display controls drive the view state
    panel.colormap_combo.setCurrentIndex(panel.colormap_combo.findData("cividis"))
    panel.colormap_combo.activated.emit(panel.colormap_combo.currentIndex())
    assert c.uncertainty_view.colormap == "cividis"
    panel.opacity_slider.setValue(35)
    assert c.uncertainty_view.opacity == pytest.approx(0.35)

    # export what is shown, and make variations of it
    values = np.random.default_rng(0).random((8, 8), dtype=np.float32) * 0.01
    c.canvas.show_images(
        [
            CanvasImage(
                data=png(),
                seed=9,
                width=8,
                height=8,
                params=GenerateParams(steps=12, uncertainty=True),
                uncertainty=umap(values),
            )
        ]
    )
    assert panel.export_png_button.isEnabled() and panel.variation_button.isEnabled()
    assert panel.variation_step_spin.maximum() == 11
    out_png = window.export_map("png", str(tmp_path / "m.png"))
    out_npy = window.export_map("npy", str(tmp_path / "m.npy"))
    assert Image.open(out_png).size == (8, 8)
    assert np.array_equal(np.load(out_npy), values)


def counting(monkeypatch, owner, name: str) -> list[int]:
    """Replace ``owner.name`` by a wrapper that counts its calls; returns the counter."""
    calls = [0]
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def test_a_map_is_coloured_once_per_change(window, monkeypatch):  # noqa: F811
    import app.ui.canvas

    c = window.controller
    coloured = counting(monkeypatch, app.ui.canvas, "heatmap_pixmap")
    params = GenerateParams(steps=4, uncertainty=True)
    c.canvas.follow_job("j1", 2, params)
    c.canvas.set_result(
        "j1",
        0,
        png(),
        seed=1,
        width=8,
        height=8,
        uncertainty=umap(np.eye(8, dtype=np.float32) * 0.01),
    )
    assert window.canvas.view.heatmap_shown and coloured[0] == 1
    # a map fetched after its image (the controller's path for maps beside history images)
    c.canvas.follow_job("j2", 1, params)
    c.canvas.set_result("j2", 0, png(), seed=2, width=8, height=8)
    assert coloured[0] == 1 and not window.canvas.view.heatmap_shown
    c.canvas.set_uncertainty(c.canvas.images[0], umap(np.full((8, 8), 0.02, np.float32)))
    assert window.canvas.view.heatmap_shown and coloured[0] == 2
    # opacity and layout move or fade the same colours; the colormap recolours once
    c.uncertainty_view.opacity = 0.3
    c.uncertainty_view.layout = "side"
    assert coloured[0] == 2
    c.uncertainty_view.colormap = "magma"
    assert coloured[0] == 3


def test_panels_ignore_other_jobs_progress(window, monkeypatch):  # noqa: F811
    import base64

    from engine.protocol import (
        GenerateJob,
        Job,
        JobPreview,
        JobProgress,
        JobQueued,
        JobStarted,
        JobState,
        UncertaintyFitJob,
    )

    c = window.controller
    panel, sampler = window.uncertainty_panel, window.sampler_panel
    refreshes = {
        name: counting(monkeypatch, panel, name)
        for name in ("_refresh_generation", "_refresh_display", "_refresh_batch")
    }
    fits_refreshes = counting(monkeypatch, sampler, "_refresh_fits")

    def total() -> int:
        return sum(n[0] for n in refreshes.values())

    gen = Job(
        id="gen",
        kind="generate",
        state=JobState.queued,
        created_at=utcnow(),
        spec=GenerateJob(params=GenerateParams(prompt="harbour", steps=40, batch_size=2)),
    )
    c.handle_event(JobQueued(job=gen))
    c.handle_event(JobStarted(job_id="gen"))
    before, fits_before = total(), fits_refreshes[0]
    generation_before = refreshes["_refresh_generation"][0]
    preview = base64.b64encode(png()).decode()
    for step in range(1, 41):
        c.handle_event(JobProgress(job_id="gen", step=step, total=80, eta_s=2.0))
        c.handle_event(JobPreview(job_id="gen", step=step, width=8, height=8, png_b64=preview))
    assert c.jobs.get("gen").step == 40  # the events were applied...
    assert total() == before and fits_refreshes[0] == fits_before  # ...and left both alone

    # the uncertainty fit's own progress shows, once per percent the status line prints
    fit = Job(
        id="fit",
        kind="uncertainty_fit",
        state=JobState.queued,
        created_at=utcnow(),
        spec=UncertaintyFitJob(),
    )
    c.handle_event(JobQueued(job=fit))
    c.handle_event(JobStarted(job_id="fit"))
    assert "running" in panel.fit_row.status.text()
    assert not panel.fit_row.fit_button.isEnabled()
    shown = refreshes["_refresh_generation"][0]
    steps = range(1, 13)
    for step in steps:
        c.handle_event(JobProgress(job_id="fit", step=step, total=400, stage="fitting"))
    percents = {round(step / 400 * 100) for step in steps}
    assert refreshes["_refresh_generation"][0] - shown == len(percents)
    assert panel.fit_row.status.text().endswith("· 3%)")
    assert total() - before == refreshes["_refresh_generation"][0] - generation_before
    assert fits_refreshes[0] == fits_before  # not a fit the Sampler panel shows


def test_overlays_leave_the_fitted_image_and_scores_readable(window, qtbot):  # noqa: F811
    from PySide6.QtCore import QRectF

    c = window.controller
    canvas, panel = window.canvas, window.uncertainty_panel
    # 64×64, as the built-in model makes: shown 8× enlarged where there is room
    images = [
        CanvasImage(
            data=png(size=(64, 64)),
            seed=i,
            width=64,
            height=64,
            path=Path(f"long-name-{i}.png"),
            params=GenerateParams(steps=10),
            uncertainty=umap(np.full((64, 64), s, np.float32)),
        )
        for i, s in enumerate((0.3, 0.1, 0.2))
    ]
    c.canvas.show_images(images)

    def clear_of_overlays() -> None:
        image = canvas.view.mapFromScene(QRectF(0, 0, 64, 64)).boundingRect()
        assert image.top() > canvas.legend.geometry().bottom()
        assert image.top() > canvas.toolbar.geometry().bottom()  # not under the zoom controls
        assert image.bottom() < min(canvas.caption.y(), canvas.use_button.y())
        assert canvas.caption.geometry().right() < canvas.use_button.x()

    clear_of_overlays()
    assert canvas.legend.y() == canvas.toolbar.y()  # wide: beside the zoom controls
    window.resize(1000, 620)  # narrow: the legend drops below the zoom controls
    qtbot.waitUntil(lambda: canvas.width() < 600)
    clear_of_overlays()
    assert canvas.legend.y() > canvas.toolbar.geometry().bottom()
    full = canvas.caption.toolTip()  # shortened at its end: seed and score come first
    assert full.startswith(
        "seed 0 · uncertainty 0.3000 (lower = more certain) · 64×64 · long-name-0.png"
    )
    assert canvas.caption.text().endswith("…") and full.startswith(canvas.caption.text()[:-1])
    # the score under each thumbnail, and the panel says when they run most certain first
    assert [canvas.strip.item(i).text() for i in range(3)] == ["1 · 0.3", "2 · 0.1", "3 · 0.2"]
    assert "Sort to put the most certain first" in panel.batch_label.text()
    panel.sort_button.click()
    assert [canvas.strip.item(i).text() for i in range(3)] == ["1 · 0.1", "2 · 0.2", "3 · 0.3"]
    assert panel.batch_label.text().startswith("Most certain first: uncertainty 0.1 (left) to 0.3")
    assert "lower = more certain" in panel.batch_label.text()
    # the longest score text fits under its thumbnail, and the tooltip says what it measures
    from PySide6.QtGui import QFontMetrics

    from app.state.uncertainty import thumb_text

    item = canvas.strip.item(2)
    # (with room to spare: on a real X server the item is narrower than offscreen)
    fm = QFontMetrics(canvas.strip.font())
    widest = max(fm.horizontalAdvance(thumb_text(31, v)) for v in (3.7e-4, 108.9, 12345.0, 0.012))
    assert widest <= 0.8 * canvas.strip.visualItemRect(item).width(), "a score under a thumb clips"
    assert "BayesDiff's score" in item.toolTip()
