"""The one render loop of every job that makes images: batches, seeds, resume, saving.

A job describes its images as :class:`Batch` es — one pipeline call each: the recipe they are
rendered with, their job-wide indices and per-image seeds, the sampler setup and conditioning,
and where the call sits on the job's progress bar — and :func:`render` runs them. Used by
``generate`` (engine/generate.py), ``generate`` with BayesDiff uncertainty
(engine/uncertainty/generate.py), ``sampler_grid`` (engine/sampler_grid.py) and
``prompt_robustness`` (engine/robustness/job.py). What it does once for all of them:

- **seeds** — image ``k`` of a recipe uses seed ``seed + k`` (A1111), mod 2³², each image from
  its own CPU generator (:func:`image_seeds`), so an image does not depend on the device or on
  the batch it falls in;
- **resume** — after an engine restart a job runs only what is missing, found by *index*, never
  by counting results (issue 16): callers choose the batches with
  :meth:`engine.jobs.JobContext.batches_to_run` (fixed batches: one whose images are partly
  saved runs again) or :func:`missing` (packed), and :func:`render` saves only the images whose
  index is not saved yet;
- **saving** — each image as a PNG with its full recipe (A1111 text and Sfumato JSON, written
  atomically: engine/outputs.py) before it is announced (``ctx.add_result``);
- **progress, previews, cancel** — between steps: the job's step, a preview of the estimate x̂₀
  (:class:`engine.previews.DenoisedTap`, Flux's packed latents unpacked) when one is due, and a
  cancel check;
- **out of memory** — a message that says what to make smaller.

The pipeline call itself is :func:`render`'s ``sample`` argument: :func:`txt2img` (the loaded
diffusers pipeline) by default, or BayesDiff's propagation with its mean decoded
(engine/uncertainty/generate.py). A sampler is ``sample(loaded, batch, report) -> images``
(PIL, one per seed), and calls ``report(done, shown)`` after each recipe step (``shown``
returns x̂₀ latents for a preview, called only when one is due).

Where img2img (and inpainting) come in: as one more sampler beside :func:`txt2img`. It builds
the image-to-image pipeline from the loaded one with diffusers' ``from_pipe``
(``AutoPipelineForImage2Image.from_pipe(loaded.pipe)``, or ``…Inpaint…``), which shares the
loaded components (UNet, VAE, text encoders, the fast path's compiled forwards) without copying
weights, and calls it with ``image=`` / ``strength=`` (and ``mask_image=``) from the recipe's
init group (``GenerateParams.init``, docs/architecture.md); batches, seeds, resume, saving and
previews stay here. ``steps`` then counts the steps actually run (``int(steps · strength)``),
which is what the batch's progress must be told.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from engine.errors import EngineError
from engine.flow import guidance_kwargs, preview_latents
from engine.outputs import output_path, save_png
from engine.previews import DenoisedTap
from engine.protocol import GenerateParams, Job, ResultImage
from engine.sampling import steps_done

#: ``report(done, shown)``: ``done`` recipe steps finished; ``shown()`` the x̂₀ latents.
Report = Callable[[int, Callable[[], Any]], None]


def image_seeds(seed: int, first: int, count: int) -> list[int]:
    """Seeds of images ``first … first+count−1`` of a recipe seeded ``seed`` (A1111's)."""
    return [(seed + first + i) % 2**32 for i in range(count)]


def missing(indices: Iterable[int], ctx) -> list[int]:
    """The ``indices`` not saved yet (a resumed job renders only those)."""
    saved = ctx.saved_indices()
    return [i for i in indices if i not in saved]


@dataclass
class Batch:
    """One pipeline call and the images it makes."""

    #: The recipe rendered (size, sampler, steps, CFG; batch settings unused).
    params: GenerateParams
    #: What the images' PNGs record as their recipe (with the model, LoRAs, embeddings).
    recipe: GenerateParams
    #: Job-wide image indices (``ResultImage.index``, the PNG's name) and one seed per image.
    indices: list[int]
    seeds: list[int]
    #: engine.sampling.SamplerSetup: the scheduler, its call arguments, calibration.
    setup: Any
    #: engine.prompts: the prompt's conditioning (embeddings, prompt-editing schedule).
    conditioning: Any
    #: The job's step before this call, and job steps per recipe step (1, or the images of the
    #: call where a job counts image-steps).
    progress_base: int = 0
    progress_weight: int = 1
    #: The preview index of each image the sampler previews (None: no previews).
    preview_indices: list[int] | None = None
    #: The caller's own data for ``result_fields`` (e.g. a grid cell's position and timer).
    tag: Any = None


def render(
    job: Job,
    ctx,
    loaded,
    batches: Iterable[Batch],
    *,
    sample: Callable[[Any, Batch, Report], list] | None = None,
    result_fields: Callable[[Batch, int, Any, Any], dict[str, Any]] | None = None,
    oom_hint: str = ". Try a smaller size or batch size, or unload other models.",
) -> None:
    """Run every batch and save its images that are not saved yet.

    ``batches`` may be a generator: a caller that prepares each call (a grid cell's sampler, a
    group's prompt) yields them one at a time. ``result_fields(batch, i, image, path)`` returns
    extra :class:`ResultImage` fields of the batch's ``i``-th image, computed before it is
    saved (a grid cell, an uncertainty result, whose ``uncertainty`` also goes into the PNG).
    ``oom_hint`` ends the out-of-memory message ("… with batch size 4" + hint).
    """
    sample = sample or txt2img
    try:
        for batch in batches:
            images = _sample(ctx, loaded, batch, sample, oom_hint)
            saved = ctx.saved_indices()
            for i, (index, seed, image) in enumerate(
                zip(batch.indices, batch.seeds, images, strict=True)
            ):
                if index in saved:
                    continue  # saved before a restart; the batch ran again for its others
                path = output_path(ctx.output_dir, job.id, index, job.created_at)
                fields = result_fields(batch, i, image, path) if result_fields else {}
                save_png(
                    image,
                    path,
                    batch.recipe,
                    seed=seed,
                    model_name=loaded.info.id,
                    index=index,
                    uncertainty=fields.get("uncertainty"),
                )
                ctx.add_result(
                    ResultImage(
                        name=path.name,
                        path=str(path),
                        index=index,
                        seed=seed,
                        width=image.width,
                        height=image.height,
                        **fields,
                    )
                )
    finally:
        close = getattr(batches, "close", None)
        if close is not None:  # a generator's open `with` (a prompt session) ends now, also
            close()  # on cancel or failure


def _sample(ctx, loaded, batch: Batch, sample, oom_hint: str) -> list:
    import torch

    p = batch.params

    def report(done: int, shown: Callable[[], Any]) -> None:
        ctx.check_cancel()
        step = batch.progress_base + done * batch.progress_weight
        if ctx.progress(step) and done < p.steps and batch.preview_indices is not None:
            latents = shown()
            for index, latent in zip(batch.preview_indices, latents, strict=False):
                ctx.preview(step, index, loaded.preview.png_b64(latent))

    try:
        return sample(loaded, batch, report)
    except torch.OutOfMemoryError as exc:
        del exc
        ctx.free_memory()
        raise EngineError(
            f"Out of memory on {loaded.device} at {p.width}×{p.height} with batch size "
            f"{len(batch.seeds)}{oom_hint}"
        ) from None


def txt2img(loaded, batch: Batch, report: Report) -> list:
    """The one text-to-image pipeline call: the batch's seeds as per-image CPU generators, its
    sampler setup (scheduler, calibration) and conditioning (prompt editing swaps embeddings
    between steps); PIL images."""
    import torch

    p, pipe = batch.params, loaded.pipe
    cond, setup = batch.conditioning, batch.setup
    pipe.scheduler = setup.scheduler
    generators = [torch.Generator("cpu").manual_seed(s) for s in batch.seeds]
    with setup.context(pipe, p.cfg_scale), DenoisedTap(pipe.scheduler) as tap:

        def on_step(_pipe, i, _t, kwargs):
            report(
                steps_done(_pipe, i, p.steps),
                lambda: preview_latents(_pipe, tap.latest(kwargs["latents"]), p),
            )  # x̂₀
            return cond.on_step_end(i, kwargs)  # prompt editing swaps embeddings

        return pipe(
            width=p.width,
            height=p.height,
            num_inference_steps=p.steps,
            **guidance_kwargs(pipe, p),  # CFG; Flux: distilled guidance
            num_images_per_prompt=len(batch.seeds),
            generator=generators,
            callback_on_step_end=on_step,
            callback_on_step_end_tensor_inputs=["latents", *cond.tensor_inputs],
            **cond.call_kwargs(),
            **setup.call_kwargs,
        ).images
