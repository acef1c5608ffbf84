"""Generation with BayesDiff uncertainty: maps, scores and variations from an intermediate step.

The ordinary ``generate`` job hands a recipe here when it asks for ``uncertainty`` or a
``variation_step`` (its ``uncertainty`` group); without it this module is never imported, so plain sampling pays nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import EngineError
from engine.protocol import GenerateParams, Job, UncertaintyResult

#: Why other samplers cannot carry uncertainty (the Sampler panel's tooltip).
UNSUPPORTED_NOTE = (
    "BayesDiff propagates uncertainty through DDIM and DPM-Solver-2 (DPM2) only; "
    "choose one of those to see uncertainty."
)


def uncertainty_problem(params: GenerateParams, fits, model_info) -> tuple[str, str] | None:
    """(field, message) if this recipe cannot run with uncertainty, else None."""
    from engine.samplers import resolve
    from engine.uncertainty.fit_job import cached_posterior
    from engine.uncertainty.propagate import SUPPORTED

    u = params.uncertainty
    if u is None:
        return None
    try:
        spec, _ = resolve(params.sampler, params.schedule)
    except (KeyError, ValueError) as exc:
        return "sampler", exc.args[0]
    if spec.scheduler not in SUPPORTED:
        return "sampler", (
            f"Uncertainty is not available with {spec.name}: BayesDiff defines it "
            "for DDIM and DPM-Solver-2 only; choose DDIM or DPM2."
        )
    if u.variation_step is not None and not 1 <= u.variation_step < params.steps:
        return (
            "uncertainty.variation_step",
            f"Variations start after a step between 1 and {params.steps - 1}",
        )
    if (
        fits is not None
        and model_info is not None
        and cached_posterior(fits, fits.model_hash(model_info)) is None
    ):
        return "uncertainty", (
            f"{model_info.name} has no uncertainty fit yet: run Fit in the "
            "Uncertainty panel (job kind 'uncertainty_fit') first."
        )
    return None


def _save_npy(array, path: Path) -> Path:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        np.save(f, array.astype(np.float32))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def run_uncertain_generate(job: Job, ctx, fits) -> None:
    from engine.prompts.job import PromptSession
    from engine.render import Batch, image_seeds, render
    from engine.sampling import prepare
    from engine.uncertainty.eps_model import EpsModel
    from engine.uncertainty.fit_job import cached_posterior

    p = job.spec.params
    loaded = ctx.load_model(p.model)
    pipe = loaded.pipe
    problem = uncertainty_problem(p, fits, loaded.info)
    if problem:
        raise EngineError(problem[1], f"params.{problem[0]}")
    post = cached_posterior(fits, fits.model_hash(loaded.info))
    setup = prepare(loaded, p, fits)
    sched = pipe.scheduler = setup.scheduler
    with PromptSession(loaded, ctx.model_folders, [p.prompt, p.negative_prompt]) as prompts:
        conditioning = prompts.encode(
            p.prompt, p.negative_prompt, p.cfg_scale, p.steps, p.clip_skip
        )
        recipe = p.model_copy(update={"model": loaded.info.id, **prompts.recipe_update()})
        cond, uncond = conditioning.at(0)[:2]
        model = EpsModel(
            pipe.unet,
            post,
            cond,
            uncond,
            p.cfg_scale,
            sched.config.get("prediction_type", "epsilon"),
        )
        u = p.uncertainty
        assert u is not None
        varying = u.variation_step is not None
        batches = ctx.batches_to_run(p.batch_count, p.batch_size)
        skipped = p.batch_count - len(batches)  # done before a restart: counted as done steps
        ctx.begin(p.steps * p.batch_count, done=skipped * p.steps)

        def batch(n_run: int, b: int) -> Batch:
            seeds = image_seeds(p.seed, b * p.batch_size, p.batch_size)
            if varying:
                seeds = [seeds[0]] * p.batch_size  # one trajectory, then batch_size draws
            return Batch(
                p,
                recipe,
                indices=[b * p.batch_size + i for i in range(p.batch_size)],
                seeds=seeds,
                setup=setup,
                conditioning=conditioning,
                progress_base=(skipped + n_run) * p.steps,
                preview_indices=list(range(p.batch_size)),
                tag=b,
            )

        sampler = _Propagation(model, u)
        render(
            job,
            ctx,
            loaded,
            (batch(n, b) for n, b in enumerate(batches)),
            sample=sampler,
            result_fields=sampler.result_fields,
            oom_hint=f" and {u.samples} uncertainty samples. Try fewer samples (S) or "
            "decodes (M), or a smaller size or batch.",
        )


class _Propagation:
    """BayesDiff's sampler for :func:`engine.render.render`: the batch's trajectories with
    their variance propagated (Kou et al. 2024, Alg. 1/2), the mean decoded to the images, and
    the pixel maps from decoded samples of the final latent (§3.3), kept for
    :meth:`result_fields`."""

    def __init__(self, model, u) -> None:
        self.model, self.u = model, u
        self.prop = self.maps = None

    def __call__(self, loaded, batch, report) -> list:
        import torch

        from engine.previews import DenoisedTap
        from engine.uncertainty.pixel_map import decode, latent_samples, pixel_variance
        from engine.uncertainty.propagate import propagate

        p, u, model, b, seeds = batch.params, self.u, self.model, batch.tag, batch.seeds
        pipe, setup, conditioning = loaded.pipe, batch.setup, batch.conditioning
        sched, device, dtype = pipe.scheduler, loaded.device, loaded.dtype
        varying = u.variation_step is not None
        n_traj = 1 if varying else p.batch_size
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds[:n_traj]]
        sched.set_timesteps(p.steps, device=device)
        x_T = pipe.prepare_latents(
            n_traj,
            pipe.unet.config.in_channels,
            p.height,
            p.width,
            conditioning.at(0)[0].dtype,
            device,
            generators,
        )
        step_kwargs = pipe.prepare_extra_step_kwargs(generators, setup.call_kwargs.get("eta", 0.0))
        variation = None
        if varying:
            vgen = torch.Generator().manual_seed((u.variation_seed + b) % 2**32)
            variation = (
                u.variation_step,
                torch.randn((p.batch_size, *x_T.shape[1:]), generator=vgen),
            )
            if "generator" in step_kwargs:  # η-noise after the draw: one generator per image
                step_kwargs["generator"] = [
                    torch.Generator("cpu").manual_seed(s + k) for k, s in enumerate(seeds)
                ]

        def on_iter(i, done, latents):
            if conditioning.scheduled:  # prompt editing: the next iteration's embeddings
                model.cond, model.uncond = conditioning.at(i + 1)[:2]
            report(done, lambda: tap.latest(latents))  # x̂₀: the picture being made

        with setup.context(pipe, p.cfg_scale), DenoisedTap(sched) as tap:
            prop = propagate(
                model,
                sched,
                x_T,
                samples=u.samples,
                skip=u.skip,
                generator=torch.Generator().manual_seed(seeds[0]),
                step_kwargs=step_kwargs,
                on_iter=on_iter,
                variation=variation,
            )
        with torch.no_grad():
            latents = prop.mean.to(dtype)
            images = decode(pipe.vae, latents, dtype, unit=False)
            maps = None
            if u.map:
                m = u.decodes
                z = latent_samples(
                    prop.mean, prop.var, m, torch.Generator().manual_seed(seeds[0] + 1)
                )
                maps = pixel_variance(decode(pipe.vae, z, dtype), m).cpu()
        self.prop, self.maps = prop, maps
        return pipe.image_processor.postprocess(images, output_type="pil")

    def result_fields(self, _batch, i: int, _image, path: Path) -> dict:
        """The ``i``-th image's map, saved beside its PNG, and its scores."""
        from engine.uncertainty.pixel_map import latent_score, pixel_score

        if self.maps is None:
            return {"uncertainty": None}
        u, prop = self.u, self.prop
        arr = self.maps[i].numpy()
        npy = _save_npy(arr, path.with_suffix(".uncertainty.npy"))
        scores = {"latent": latent_score(prop.var[i]), "pixel": pixel_score(self.maps[i])}
        return {
            "uncertainty": UncertaintyResult(
                map_name=npy.name,
                score=scores[u.score],
                score_kind=u.score,
                latent_score=scores["latent"],
                pixel_score=scores["pixel"],
                map_min=float(arr.min()),
                map_max=float(arr.max()),
            )
        }
