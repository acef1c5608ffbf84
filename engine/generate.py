"""The ``generate`` job: text-to-image with the loaded diffusers pipeline."""

from __future__ import annotations

import logging

from engine.prompts.job import PromptSession
from engine.protocol import GenerateJob, Job
from engine.render import Batch, image_seeds, render
from engine.sampling import prepare

log = logging.getLogger(__name__)


def run_generate(job: Job, ctx, fits=None) -> None:
    """Render every image of the job, skipping the indices already saved (engine restart).

    Image ``k`` (counting across the batch and the batch count) uses seed ``seed + k``, as
    A1111 does, each from its own CPU generator so results do not depend on the device.
    ``fits`` (:class:`engine.fits.FitStore`) serves Analytic-DPM's Γ_t and calibration.
    """
    spec: GenerateJob = job.spec
    p = spec.params
    if p.uncertainty is not None:
        from engine.uncertainty.generate import run_uncertain_generate

        return run_uncertain_generate(job, ctx, fits)
    loaded = ctx.load_model(p.model)
    pipe = loaded.pipe
    setup = prepare(loaded, p, fits)
    pipe.scheduler = setup.scheduler
    with PromptSession(loaded, ctx.model_folders, [p.prompt, p.negative_prompt]) as prompts:
        conditioning = prompts.encode(
            p.prompt, p.negative_prompt, p.cfg_scale, p.steps, p.clip_skip
        )
        # the saved recipe names its model and the LoRAs and embeddings it used
        recipe = p.model_copy(update={"model": loaded.info.id, **prompts.recipe_update()})
        _render(job, ctx, loaded, setup, conditioning, recipe)


def _render(job: Job, ctx, loaded, setup, conditioning, recipe) -> None:
    """The job's batches, those that still miss an image (engine restart), through the one
    render loop (engine/render.py)."""
    p = job.spec.params
    batches = ctx.batches_to_run(p.batch_count, p.batch_size)
    skipped = p.batch_count - len(batches)  # done before a restart: counted as done steps
    ctx.begin(p.steps * p.batch_count, done=skipped * p.steps)
    render(
        job,
        ctx,
        loaded,
        (
            Batch(
                p,
                recipe,
                indices=[b * p.batch_size + i for i in range(p.batch_size)],
                seeds=image_seeds(p.seed, b * p.batch_size, p.batch_size),
                setup=setup,
                conditioning=conditioning,
                progress_base=(skipped + n_run) * p.steps,
                preview_indices=list(range(p.batch_size)),
            )
            for n_run, b in enumerate(batches)
        ),
    )
