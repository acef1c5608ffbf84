"""The ``uncertainty_fit`` job and the posterior cache lookup.

The posterior (two variance tensors, a few KB to ~50 KB) is stored in the
:class:`engine.fits.FitStore` under the weights' hash like the sampler fits; it is read once per
engine process and model hash and then served from memory, so loading a model with a cached
posterior costs nothing.
"""

from __future__ import annotations

import logging
import threading
import time

from engine.protocol import FitInfo, Job, UncertaintyFitJob, utcnow
from engine.uncertainty.laplace import LastLayerPosterior

log = logging.getLogger(__name__)
_cache: dict[str, tuple[str, LastLayerPosterior]] = {}  # model hash → (fit id, posterior)
_lock = threading.Lock()


def cached_posterior(fits, model_hash: str) -> LastLayerPosterior | None:
    """The newest uncertainty fit of the model, or None if it has none."""
    listed = fits.list(model_hash, "uncertainty")
    if not listed:
        return None
    newest = listed[0]
    with _lock:
        hit = _cache.get(model_hash)
        if hit and hit[0] == newest.id:
            return hit[1]
    post = LastLayerPosterior.from_tensors(fits.tensors(newest))
    with _lock:
        _cache[model_hash] = (newest.id, post)
    return post


def run_uncertainty_fit(job: Job, ctx, fits) -> None:
    """Fit BayesDiff's last-layer Laplace posterior on the fit data and cache it."""
    import torch

    from engine.fit_jobs import _alphas, _embed, gather_x0
    from engine.uncertainty.fit import fit_posterior

    spec: UncertaintyFitJob = job.spec
    p = spec.params
    t0 = time.monotonic()
    loaded = ctx.load_model(p.model)
    x0, captions, source = gather_x0(loaded, p.data, ctx, p.seed)
    embeds = _embed(loaded.pipe, captions, loaded.device)
    alphas = _alphas(loaded).alphas_cumprod
    batch = 32
    ctx.begin(len(x0), stage="fitting uncertainty")

    def on_batch(done: int, _total: int) -> None:
        ctx.check_cancel()
        ctx.progress(done, stage="fitting uncertainty")

    post = fit_posterior(
        loaded.pipe.unet,
        x0,
        embeds,
        alphas,
        prior_precision=p.prior_precision,
        noise=p.noise,
        generator=torch.Generator().manual_seed(p.seed),
        batch=batch,
        on_batch=on_batch,
    )
    model_hash = fits.model_hash(loaded.info)
    info = FitInfo(
        id="",
        kind="uncertainty",
        model=loaded.info.id,
        model_hash=model_hash,
        created_at=utcnow(),
        images=len(x0),
        source=source,
        samples_per_step=1,
        seconds=time.monotonic() - t0,
        prior_precision=p.prior_precision,
        noise=p.noise,
    )
    job.fit = fits.save(info, post.tensors())
    log.info(
        "uncertainty fit of %s on %d images: Var[W] in [%.3g, %.3g], Var[b] %.3g",
        loaded.info.id,
        len(x0),
        float(post.weight_var.min()),
        float(post.weight_var.max()),
        float(post.bias_var.max()),
    )
