"""engine/render.py's loop on its own (a fake sampler, no model): what it saves on resume, how it
counts progress, when it previews, and that a generator of batches is closed when a job stops.
The real samplers' outputs are pinned bit for bit by tests/engine/test_golden.py."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from PIL import Image

from engine.errors import JobCancelled
from engine.protocol import GenerateJob, GenerateParams, Job, JobState, recipe_from_png_text
from engine.render import Batch, image_seeds, missing, render


class Ctx:
    def __init__(self, job: Job, out, preview_due: bool = True) -> None:
        self.job, self.output_dir, self.preview_due = job, out, preview_due
        self.steps, self.previews, self.cancel_after = [], [], None

    def check_cancel(self) -> None:
        if self.cancel_after is not None and len(self.steps) >= self.cancel_after:
            raise JobCancelled

    def progress(self, step: int, stage: str = "sampling") -> bool:
        self.steps.append(step)
        return self.preview_due

    def preview(self, step, index, png) -> None:
        self.previews.append((step, index, png))

    def saved_indices(self) -> set[int]:
        return {r.index for r in self.job.results if r.role == "image"}

    def add_result(self, image) -> None:
        self.job.results.append(image)

    def free_memory(self) -> None:
        pass


LOADED = SimpleNamespace(
    info=SimpleNamespace(id="fake"),
    device="cpu",
    preview=SimpleNamespace(png_b64=lambda latent: ("png", latent, 0)),
)


def fake_sampler(loaded, batch: Batch, report) -> list:
    """One 'step' per recipe step; images coloured by seed, so a test sees which is which."""
    for done in range(1, batch.params.steps + 1):
        report(done, lambda: [f"x0-{s}" for s in batch.seeds])
    return [Image.new("RGB", (8, 8), (s % 256, 0, 0)) for s in batch.seeds]


def _job(params: GenerateParams) -> Job:
    return Job(
        id="0123456789abcdef",
        kind="generate",
        state=JobState.running,
        spec=GenerateJob(params=params),
        created_at=datetime(2026, 1, 2, tzinfo=UTC),
    )


def _batch(p, b: int, size: int, **kw) -> Batch:
    return Batch(
        p,
        p,
        indices=[b * size + i for i in range(size)],
        seeds=image_seeds(p.seed, b * size, size),
        setup=None,
        conditioning=None,
        **kw,
    )


def test_seeds_are_a1111s_and_wrap():
    assert image_seeds(10, 4, 3) == [14, 15, 16]
    assert image_seeds(2**32 - 1, 0, 2) == [2**32 - 1, 0]


def test_a_resumed_batch_saves_only_its_missing_images(tmp_path):
    p = GenerateParams(prompt="a red square", seed=7, steps=2, width=64, height=64)
    job = _job(p)
    ctx = Ctx(job, tmp_path)
    render(job, ctx, LOADED, [_batch(p, 0, 2)], sample=fake_sampler)
    first = {r.index: r for r in job.results}
    job.results = [first[1]]  # the engine died after saving image 1 of the batch
    render(job, ctx, LOADED, [_batch(p, 0, 2)], sample=fake_sampler)
    assert [(r.index, r.seed) for r in job.results] == [(1, 8), (0, 7)]
    assert missing(range(4), ctx) == [2, 3]
    with Image.open(job.results[1].path) as png:
        recipe = recipe_from_png_text(dict(png.text))
    assert recipe is not None and (recipe.seed, recipe.prompt) == (7, "a red square")


def test_progress_counts_from_the_batch_and_previews_when_due(tmp_path):
    p = GenerateParams(seed=1, steps=3, width=64, height=64)
    job = _job(p)
    ctx = Ctx(job, tmp_path)
    render(
        job,
        ctx,
        LOADED,
        [_batch(p, 1, 2, progress_base=10, progress_weight=2, preview_indices=[0, 1])],
        sample=fake_sampler,
    )
    assert ctx.steps == [12, 14, 16]
    # previews for every step but the last (the image itself follows), one per image
    assert [(s, i, png[1]) for s, i, png in ctx.previews] == [
        (12, 0, "x0-3"),
        (12, 1, "x0-4"),
        (14, 0, "x0-3"),
        (14, 1, "x0-4"),
    ]
    quiet = Ctx(_job(p), tmp_path)
    render(quiet.job, quiet, LOADED, [_batch(p, 0, 1)], sample=fake_sampler)
    assert quiet.previews == []  # preview_indices None: none sent


def test_result_fields_reach_the_result(tmp_path):
    p = GenerateParams(seed=1, steps=1, width=64, height=64)
    job = _job(p)
    seen = []

    def fields(batch, i, image, path):
        seen.append((batch.indices[i], path.name))
        return {"role": "image"}

    render(
        job,
        Ctx(job, tmp_path),
        LOADED,
        [_batch(p, 0, 2)],
        sample=fake_sampler,
        result_fields=fields,
    )
    assert seen == [(0, "01234567-000.png"), (1, "01234567-001.png")]


def test_a_cancelled_job_closes_its_batches_at_once(tmp_path):
    p = GenerateParams(seed=1, steps=4, width=64, height=64)
    job = _job(p)
    ctx = Ctx(job, tmp_path)
    ctx.cancel_after = 2
    state = []

    def batches():
        try:
            state.append("open")  # e.g. a prompt session with LoRAs loaded
            yield _batch(p, 0, 1)
            yield _batch(p, 1, 1)
        finally:
            state.append("closed")

    try:
        render(job, ctx, LOADED, batches(), sample=fake_sampler)
    except JobCancelled:
        # closed by render itself, not by the garbage collector once the traceback is gone
        assert state == ["open", "closed"] and job.results == []
    else:
        pytest.fail("the job was not cancelled")
