"""Issue 14 item 8: words for artists — no Greek letters or bare symbols in what the panels
and the canvas print (the maths lives in tooltips), and every uncertainty score says which way
is better."""

from __future__ import annotations

import re

from PySide6.QtWidgets import QAbstractButton, QLabel

from app.state.canvas import CanvasImage
from app.state.jobs import FIT_MATHS, JobItem
from app.state.sampler import FitsState
from engine.protocol import (
    FIT_JOB_KINDS,
    Job,
    JobState,
    SamplerInfo,
    UncertaintyFitJob,
    UncertaintyFitParams,
    utcnow,
)

from .test_uncertainty_panel import png, umap
from .test_window import window  # noqa: F401

#: What an artist should not have to read: Greek letters, hats, and one-letter field names.
MATHS = re.compile(r"[Γγεσ̂]|ε̂|\bS/k/M\b")


def _texts(root) -> list[str]:
    out = [lab.text() for lab in root.findChildren(QLabel) if lab.isVisibleTo(root)]
    out += [b.text() for b in root.findChildren(QAbstractButton) if b.isVisibleTo(root)]
    return [t for t in out if t]


def test_panels_print_no_maths(window, qtbot):  # noqa: F811
    c = window.controller
    c.generation.set_option("uncertainty", True)
    c.fits.model = "tiny"
    c.engine.samplers = [SamplerInfo(name="Analytic-DDIM", description="d", needs_fit="analytic")]
    c.generation.sampler = "Analytic-DDIM"
    for dock in (window.sampler_dock, window.uncertainty_dock):
        dock.show()
        dock.raise_()
        qtbot.wait(10)
        for text in _texts(dock):
            assert not MATHS.search(text), text
    need = window.sampler_panel.need_label
    assert "noise at each step" in need.text() and "Γ_t" in need.toolTip()
    labels = [lab.text() for lab in window.uncertainty_panel.findChildren(QLabel)]
    assert {"Samples", "Every k-th step", "Decodes"} <= set(labels)
    assert not {"S", "k", "M"} & set(labels)
    assert "S:" in window.uncertainty_panel.samples_spin.toolTip()  # the symbol, for the curious


def test_fit_cards_read_in_words_with_the_maths_in_the_tooltip(window):  # noqa: F811
    job = Job(
        id="f1",
        kind="uncertainty_fit",
        state=JobState.queued,
        spec=UncertaintyFitJob(params=UncertaintyFitParams()),
        created_at=utcnow(),
    )
    item = JobItem.from_job(job)
    assert not MATHS.search(item.title)
    assert (
        set(FIT_MATHS) == set(FIT_JOB_KINDS.values()) == {"analytic", "calibration", "uncertainty"}
    )
    assert "Γ_t" in FIT_MATHS["analytic"]
    assert (item.fit_kind, item.glyph) == ("uncertainty", "σ²")
    assert FitsState().needs is not None


def test_scores_say_which_way_is_better(window):  # noqa: F811
    canvas = window.canvas
    images = [CanvasImage(data=png(), seed=i) for i in range(3)]
    for i, im in enumerate(images):
        im.uncertainty = umap([[0.001 * (i + 1), 0.0]])
    c = window.controller
    c.canvas.show_images(images)
    c.canvas.maps_changed.emit()
    assert "lower = more certain" in canvas._caption_text
    assert "lower = more certain" in canvas.strip.item(0).toolTip()
    low, high = canvas.legend.end_labels()
    assert low.endswith("sure") and high.startswith("unsure")
    assert "σ" not in canvas.legend.title
    window.uncertainty_panel.sort_button.click()
    assert "lower = more certain" in window.uncertainty_panel.batch_label.text()
