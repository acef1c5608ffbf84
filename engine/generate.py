"""The ``generate`` job: text-to-image with the loaded diffusers pipeline."""

from __future__ import annotations

import logging

from engine.errors import EngineError
from engine.flow import guidance_kwargs, preview_latents
from engine.outputs import output_path, save_png
from engine.previews import DenoisedTap
from engine.prompts.job import PromptSession
from engine.protocol import GenerateJob, Job, ResultImage
from engine.sampling import prepare, steps_done

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
        conditioning = prompts.encode(p.prompt, p.negative_prompt, p.cfg_scale, p.steps,
                                      p.clip_skip)
        # the saved recipe names its model and the LoRAs and embeddings it used
        recipe = p.model_copy(update={"model": loaded.info.id, **prompts.recipe_update()})
        _render(job, ctx, loaded, setup, conditioning, recipe)


def _render(job: Job, ctx, loaded, setup, conditioning, recipe) -> None:
    import torch

    p = job.spec.params
    pipe = loaded.pipe

    total = p.steps * p.batch_count
    saved = ctx.saved_indices()
    batches = ctx.batches_to_run(p.batch_count, p.batch_size)
    skipped = p.batch_count - len(batches)  # done before a restart: counted as done steps
    ctx.begin(total, done=skipped * p.steps)
    for n_run, b in enumerate(batches):
        seeds = [(p.seed + b * p.batch_size + i) % 2**32 for i in range(p.batch_size)]
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]

        def on_step(_pipe, i, _t, kwargs, base=(skipped + n_run) * p.steps):
            ctx.check_cancel()
            done = steps_done(_pipe, i, p.steps)  # two-stage samplers call back twice a step
            step = base + done
            if ctx.progress(step) and done < p.steps:
                latents = preview_latents(_pipe, tap.latest(kwargs["latents"]), p)  # x̂₀
                for k in range(latents.shape[0]):
                    ctx.preview(step, k, loaded.preview.png_b64(latents[k]))
            return conditioning.on_step_end(i, kwargs)  # prompt editing swaps embeddings

        try:
            with setup.context(pipe, p.cfg_scale), DenoisedTap(pipe.scheduler) as tap:
                out = pipe(
                    width=p.width,
                    height=p.height,
                    num_inference_steps=p.steps,
                    **guidance_kwargs(pipe, p),  # CFG; Flux: distilled guidance
                    num_images_per_prompt=p.batch_size,
                    generator=generators,
                    callback_on_step_end=on_step,
                    callback_on_step_end_tensor_inputs=["latents", *conditioning.tensor_inputs],
                    **conditioning.call_kwargs(),
                    **setup.call_kwargs,
                )
        except torch.OutOfMemoryError as exc:
            del exc
            ctx.free_memory()
            raise EngineError(
                f"Out of memory on {loaded.device} at {p.width}×{p.height} with batch size "
                f"{p.batch_size}. Try a smaller size or batch size, or unload other models."
            ) from None

        for i, image in enumerate(out.images):
            index = b * p.batch_size + i
            if index in saved:
                continue  # saved before a restart; the batch ran again for its other images
            path = output_path(ctx.output_dir, job.id, index, job.created_at)
            save_png(image, path, recipe, seed=seeds[i], model_name=loaded.info.id, index=index)
            ctx.add_result(
                ResultImage(
                    name=path.name, path=str(path), index=index, seed=seeds[i],
                    width=image.width, height=image.height,
                )
            )
