"""The ``analytic_fit`` and ``calibration_fit`` jobs: Monte-Carlo statistics of ε̂ for a model.

x₀ come from the model's shipped fit set (``resources/fitsets/<model id>/``), a folder of
images (captions from same-named ``.txt`` files), or the model's own samples. Images are
encoded with the model's VAE; ε̂ is the UNet's (v- and x₀-prediction converted to ε) under the images'
captions, so the statistics are those of the conditional model the sampler uses. The numbers go
to the :class:`engine.fits.FitStore`, keyed by the weights' hash.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from engine.architecture import Architecture, Method
from engine.errors import EngineError
from engine.models.registry import RESOURCES
from engine.prompts.encode import embed_prompts, encode_for_pipe, text_encoders
from engine.protocol import AnalyticFitJob, CalibrationFitJob, FitData, FitInfo, Job, utcnow

log = logging.getLogger(__name__)
FITSETS = RESOURCES / "fitsets"
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
#: CFG scale of the model's own samples (data.source 'generated'): diffusers' default.
SAMPLE_GUIDANCE = 7.5


# --------------------------------------------------------------------------- x₀


def native_size(pipe) -> int:
    return int(pipe.unet.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))


def _load_images(data: FitData, model_id: str, size: int):
    """(uint8 images (N, size, size, 3), captions, source label)."""
    import numpy as np
    from PIL import Image

    if data.source == "fitset":
        folder = FITSETS / model_id
        if not (folder / "captions.json").is_file() or not (folder / "images.png").is_file():
            raise EngineError(
                f"{model_id} has no shipped fit set (looked in {folder}). Fit on a folder of "
                "images like the model's training data (data.source 'folder') or on its own "
                "samples (data.source 'generated').",
                "params.data.source",
            )
        from engine.training.dataset import load_fit_set

        images, items = load_fit_set(folder)
        captions = [it.get("caption", "") for it in items]
        source = "fitset"
    else:
        folder = Path(data.folder or "").expanduser()
        if not data.folder or not folder.is_dir():
            raise EngineError(f"{folder} is not a folder of images", "params.data.folder")
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in _IMAGE_SUFFIXES)
        if not files:
            raise EngineError(f"{folder} holds no PNG, JPEG or WebP images", "params.data.folder")
        images, captions = [], []
        for f in files[: data.count]:
            im = Image.open(f).convert("RGB")
            side = min(im.size)  # centre crop to a square, then the model's native size
            left, top = (im.width - side) // 2, (im.height - side) // 2
            im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS)
            images.append(np.asarray(im))
            txt = f.with_suffix(".txt")
            captions.append(txt.read_text().strip() if txt.is_file() else "")
        images = np.stack(images)
        source = f"folder:{folder}"
    images, captions = images[: data.count], captions[: data.count]
    if images.shape[1] != size or images.shape[2] != size:
        images = np.stack(
            [np.asarray(Image.fromarray(im).resize((size, size), Image.LANCZOS)) for im in images]
        )
    return images, captions, source


def _encode(pipe, images, device, dtype, ctx, batch: int = 32):
    import torch

    vae = pipe.vae
    scale = getattr(vae.config, "scaling_factor", 1.0) or 1.0
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    out = []
    ctx.begin(len(images), stage="encoding images")
    with torch.no_grad():
        for i in range(0, len(images), batch):
            ctx.check_cancel()
            x = torch.from_numpy(images[i : i + batch]).permute(0, 3, 1, 2).float() / 127.5 - 1
            z = vae.encode(x.to(device, dtype)).latent_dist.mean
            out.append(((z - shift) * scale).float().cpu())
            ctx.progress(min(i + batch, len(images)), stage="encoding images")
    return torch.cat(out)


def _generate_latents(pipe, data: FitData, ctx, seed: int):
    import torch

    prompts = data.prompts or [""]
    size = native_size(pipe)
    latents, captions = [], []
    ctx.begin(data.count, stage="generating samples")
    for k in range(data.count):
        ctx.check_cancel()
        prompt = prompts[k % len(prompts)]
        conditioning = encode_for_pipe(pipe, prompt, "", SAMPLE_GUIDANCE, pipe.device)
        out = pipe(
            **conditioning.call_kwargs(),
            guidance_scale=SAMPLE_GUIDANCE,
            width=size,
            height=size,
            num_inference_steps=data.steps,
            generator=torch.Generator("cpu").manual_seed(seed + k),
            output_type="latent",
        )
        latents.append(out.images.float().cpu())
        captions.append(prompt)
        ctx.progress(k + 1, stage="generating samples")
    return torch.cat(latents), captions, "generated"


def check_fits(info, field: str = "params.model") -> None:
    """Refuse a model whose architecture the fits are not written for (SD 1.x/2.x only:
    engine/architecture.py says why not)."""
    problem = Architecture.parse(info.architecture).why_not(Method.FITS)
    if problem:
        raise EngineError(problem, field)


def gather_x0(loaded, data: FitData, ctx, seed: int):
    """Latent x₀ (N, C, h, w) on the CPU, their captions, and a source label."""
    check_fits(loaded.info)  # before minutes of encoding, not after
    pipe = loaded.pipe
    if data.source == "generated":
        return _generate_latents(pipe, data, ctx, seed)
    images, captions, source = _load_images(data, loaded.info.id, native_size(pipe))
    return _encode(pipe, images, loaded.device, loaded.dtype, ctx), captions, source


# --------------------------------------------------------------------------- ε̂


def _embed(pipe, prompts: list[str], device):
    return embed_prompts(text_encoders(pipe), prompts, device)


def make_eps(
    loaded,
    prompt_embeds,
    alphas_cumprod,
    prediction_type: str,
    uncond_embeds=None,
    guidance: float = 1.0,
):
    """ε̂(x_t, t, rows): the UNet under the rows' prompt embeddings, as a noise prediction;
    with ``uncond_embeds`` and ``guidance`` > 1, the classifier-free-guided one."""
    import torch

    from engine.denoisers import Prediction, alpha_sigma, to_eps

    unet, device, dtype = loaded.pipe.unet, loaded.device, loaded.dtype

    def eps(xt, t: int, rows):
        with torch.no_grad():
            cond = (
                prompt_embeds[rows]
                if prompt_embeds.shape[0] > 1
                else prompt_embeds.expand(len(xt), -1, -1)
            )
            x, tt = xt.to(device, dtype), torch.tensor(t, device=device)
            out = unet(x, tt, encoder_hidden_states=cond.to(device, dtype)).sample.float().cpu()
            if uncond_embeds is not None and guidance > 1:
                unc = uncond_embeds.expand(len(xt), -1, -1).to(device, dtype)
                u = unet(x, tt, encoder_hidden_states=unc).sample.float().cpu()
                out = u + guidance * (out - u)
        if prediction_type != Prediction.EPSILON:  # v or x̂₀ → ε̂ (engine/denoisers.py)
            out = to_eps(
                prediction_type, out, xt.float().cpu(), *alpha_sigma(float(alphas_cumprod[t]))
            )
        return out

    return eps


def _progress(ctx, stage: str, offset: int = 0):
    def on_batch(done: int, _total: int) -> None:
        ctx.check_cancel()
        ctx.progress(offset + done, stage=stage)

    return on_batch


def _alphas(loaded):
    from engine.schedulers.analytic_dpm import AnalyticDPMScheduler

    return AnalyticDPMScheduler.from_config(loaded.base_scheduler_config)


# --------------------------------------------------------------------------- jobs


def run_analytic_fit(job: Job, ctx, fits) -> None:
    """Γ_t on the union of the step grids asked for (Bao et al. 2022, §3); with
    ``timestep_spacing = "optimal"``, on the candidate grid, and the optimal trajectory of each
    asked step count (§4) cached with the fit."""
    import torch

    from engine.eps_stats import estimate_eps_stats
    from engine.schedulers.analytic_dpm import (
        OPTIMAL,
        candidate_grid,
        optimal_trajectory,
        trajectory,
    )

    spec: AnalyticFitJob = job.spec
    p = spec.params
    t0 = time.monotonic()
    loaded = ctx.load_model(p.model)
    sched = _alphas(loaded)
    cfg = sched.config
    spacing = p.timestep_spacing or cfg.timestep_spacing
    if spacing == OPTIMAL:
        timesteps = sorted(
            candidate_grid(cfg.num_train_timesteps, max(100, *p.steps)), reverse=True
        )
    else:
        timesteps = sorted(
            {
                t
                for n in p.steps
                for t in trajectory(cfg.num_train_timesteps, n, spacing, cfg.steps_offset)
            },
            reverse=True,
        )
    x0, captions, source = gather_x0(loaded, p.data, ctx, p.seed)
    embeds = _embed(loaded.pipe, captions, loaded.device)
    uncond = _embed(loaded.pipe, [""], loaded.device) if p.cfg_scale > 1 else None
    eps = make_eps(loaded, embeds, sched.alphas_cumprod, cfg.prediction_type, uncond, p.cfg_scale)
    n = p.samples_per_step or len(x0)
    batch = 64
    ctx.begin(-(-n // batch) * len(timesteps), stage="fitting Γ")
    stats = estimate_eps_stats(
        eps,
        x0,
        timesteps,
        sched.alphas_cumprod,
        samples_per_step=n,
        batch=batch,
        generator=torch.Generator().manual_seed(p.seed),
        on_batch=_progress(ctx, "fitting Γ"),
    )
    model_hash = fits.model_hash(loaded.info)
    info = FitInfo(
        id="",
        kind="analytic",
        model=loaded.info.id,
        model_hash=model_hash,
        created_at=utcnow(),
        images=len(x0),
        source=source,
        samples_per_step=n,
        seconds=time.monotonic() - t0,
        steps=sorted(p.steps),
        timestep_spacing=p.timestep_spacing,
        timesteps=len(timesteps),
    )
    tensors = {
        "timesteps": torch.tensor(timesteps, dtype=torch.int64),
        "gamma": stats.gamma,
        "data_range": torch.tensor((x0.max() - x0.min()).item() / 2, dtype=torch.float64),
    }
    if spacing == OPTIMAL:
        gammas = {int(t): float(g) for t, g in zip(timesteps, stats.gamma, strict=True)}
        for k in p.steps:
            tensors[f"optimal_{k}"] = torch.tensor(
                optimal_trajectory(sched.alphas_cumprod, gammas, k), dtype=torch.int64
            )
    job.fit = fits.save(info, tensors)
    log.info(
        "analytic fit of %s: %d timesteps, Γ in [%.3f, %.3f]",
        loaded.info.id,
        len(timesteps),
        float(stats.gamma.min()),
        float(stats.gamma.max()),
    )


def run_calibration_fit(job: Job, ctx, fits) -> None:
    """E[ε̂(x_t, t)] per channel and per element (C×H×W, the official form) on a dense grid,
    with and without the captions (Pang et al.)."""
    import torch

    from engine.eps_stats import estimate_eps_stats

    spec: CalibrationFitJob = job.spec
    p = spec.params
    t0 = time.monotonic()
    loaded = ctx.load_model(p.model)
    sched = _alphas(loaded)
    cfg = sched.config
    timesteps = sorted(
        {round(float(t)) for t in torch.linspace(0, cfg.num_train_timesteps - 1, p.timesteps)}
    )
    x0, captions, source = gather_x0(loaded, p.data, ctx, p.seed)
    cond = _embed(loaded.pipe, captions, loaded.device)
    uncond = _embed(loaded.pipe, [""], loaded.device)
    batch = 64
    per_pass = -(-len(x0) // batch) * len(timesteps)
    ctx.begin(2 * per_pass, stage="fitting calibration")
    means, spatial = [], []
    for k, embeds in enumerate((cond, uncond)):
        eps = make_eps(loaded, embeds, sched.alphas_cumprod, cfg.prediction_type)
        stats = estimate_eps_stats(
            eps,
            x0,
            timesteps,
            sched.alphas_cumprod,
            batch=batch,
            generator=torch.Generator().manual_seed(p.seed),
            on_batch=_progress(ctx, "fitting calibration", k * per_pass),
        )
        means.append(stats.mean)
        spatial.append(stats.spatial_mean)
    model_hash = fits.model_hash(loaded.info)
    info = FitInfo(
        id="",
        kind="calibration",
        model=loaded.info.id,
        model_hash=model_hash,
        created_at=utcnow(),
        images=len(x0),
        source=source,
        samples_per_step=len(x0),
        seconds=time.monotonic() - t0,
        timesteps=len(timesteps),
    )
    job.fit = fits.save(
        info,
        {
            "timesteps": torch.tensor(timesteps, dtype=torch.int64),
            "mean_cond": means[0],
            "mean_uncond": means[1],
            "spatial_cond": spatial[0],
            "spatial_uncond": spatial[1],
        },
    )
    log.info(
        "calibration fit of %s: |mean ε̂| up to %.4f", loaded.info.id, float(means[0].abs().max())
    )
