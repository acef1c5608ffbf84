"""Train the embedded model from nothing: data -> VAE -> text encoder + UNet -> ControlNet.

Every stage writes its result under ``--work`` and can be re-run alone (``--stages``); ``export``
assembles the diffusers folders under ``--out`` (the model, its canny ControlNet, the evaluation
classifier and the fit set). Losses go to ``<work>/log.jsonl``; the wall time of each stage to
``<work>/summary.json``, which the model card quotes.

A recipe (``engine/training/recipes.py``) runs everything in one command with a time budget
per stage, then exports fp16 weights, evaluates them and packs the result into parts that fit
the device tool's return limits (``engine/training/bundle.py``):

    python -m engine.training.train --recipe gpu-8min --work DIR [--dataset-archive sprites.npz]
    python -m engine.training.train --recipe gpu-8min --work DIR --dry-run    # CPU, ~1 min

By hand, with step counts (what the shipped CPU weights came from; about 1.5 h of one core):

    python -m engine.training.train --work /tmp/sfumato-train --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.training import components
from engine.training.dataset import (  # canny: re-exported (its old home)
    EmojiDataset,
    SpriteSet,
    canny,
    caption,
    compose_dataset,
    render_sprites,
    write_fit_set,
)
from engine.training.recipes import RECIPES, Recipe, dry_run

REPO = Path(__file__).resolve().parents[2]
STAGES = ("data", "classifier", "vae", "unet", "controlnet", "export")


class Log:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, record: dict) -> None:
        line = json.dumps(record)
        print(line, flush=True)
        with self.path.open("a") as f:
            f.write(line + "\n")


@dataclass
class Plan:
    """How long one stage runs: ``seconds`` of wall time (a recipe) or ``steps`` (by hand)."""

    batch: int
    lr: float
    steps: int | None = None
    seconds: float | None = None


class StageClock:
    """Yields step numbers until the stage's step count or time budget is spent.

    ``progress`` is the fraction spent (of the steps, or of the seconds), which drives the
    learning-rate schedule, so a budgeted stage anneals whatever speed the device runs at."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.t0 = time.monotonic()
        self.step = 0

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    @property
    def progress(self) -> float:
        if self.plan.seconds is not None:
            return min(1.0, self.elapsed / self.plan.seconds)
        return min(1.0, self.step / max(1, self.plan.steps or 1))

    def __iter__(self) -> Iterator[int]:
        self.t0 = time.monotonic()
        self.step = 0
        while True:
            if self.plan.steps is not None and self.step >= self.plan.steps:
                return
            # At least one step, so that every stage saves something even on a tiny budget.
            if self.plan.seconds is not None and self.step and self.elapsed >= self.plan.seconds:
                return
            yield self.step
            self.step += 1

    def last(self, every: int) -> bool:
        """Whether to log now: every ``every`` steps, and near the end of the budget."""
        near_end = self.plan.steps is not None and self.step == self.plan.steps - 1
        return self.step % every == 0 or near_end


def _lr_at(clock: StageClock, lr: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine from ``lr`` to ``lr / 10`` over the
    fraction of the stage spent."""
    if clock.step < warmup:
        return lr * (clock.step + 1) / warmup
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * clock.progress)))


def _autocast(args):
    """bf16 autocast on CUDA when the recipe asks for it; nothing on the CPU."""
    if getattr(args, "bf16", False) and args.device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _optimizer(params, args, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    # The fused CUDA AdamW: one kernel for all parameters instead of several per tensor.
    fused = args.device.startswith("cuda")
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)


def _maybe_compile(fn, name: str, args, log):
    """``torch.compile(fn)`` if the recipe compiles stage ``name``; eager otherwise, and eager
    again if compiling fails at the first call (logged, never fatal)."""
    if name not in getattr(args, "compile", ()):
        return fn
    compiled = torch.compile(fn)
    state = {"fn": compiled, "first": True}

    def call(*a, **kw):
        if not state["first"]:
            return state["fn"](*a, **kw)
        state["first"] = False
        t0 = time.monotonic()
        try:
            out = compiled(*a, **kw)
        except Exception as exc:  # noqa: BLE001 -- any compiler failure: train eagerly instead
            log({"stage": name, "compile": "failed, eager instead", "error": str(exc)[:300]})
            state["fn"] = fn
            return fn(*a, **kw)
        log({"stage": name, "compile_seconds": round(time.monotonic() - t0, 1)})
        return out

    return call


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


@torch.no_grad()
def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float) -> None:
    d = min(decay, (1 + step) / (10 + step))
    # One multi-tensor kernel instead of one per parameter (hundreds on a GPU step).
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - d)


def _images(data: EmojiDataset, device: str) -> torch.Tensor:
    """The whole dataset on the device, (N, 3, H, W) in [-1, 1]: converted in chunks so the
    float copy never exists on the host."""
    out = torch.empty((len(data), 3, *data.images.shape[1:3]), device=device)
    for i in range(0, len(data), 4096):
        chunk = torch.from_numpy(data.images[i : i + 4096]).to(device)
        out[i : i + 4096] = chunk.permute(0, 3, 1, 2).float() / 127.5 - 1
    return out


def _generators(args, offset: int) -> tuple[torch.Generator, torch.Generator]:
    """(on the device: batches and noise; on the CPU: scalars that steer Python, e.g. crops)."""
    dev = torch.Generator(device=args.device).manual_seed(args.seed + offset)
    return dev, torch.Generator().manual_seed(args.seed + offset)


# --- stages ----------------------------------------------------------------------------------


def stage_vae(data: EmojiDataset, args, log: Log) -> None:
    """AutoencoderKL with L1 + image-gradient L1 + a small KL; mostly on 32 px crops (4x
    cheaper, the network is convolutional), the last 10 % on whole images so the middle
    attention block sees full-size latents."""
    g, gc = _generators(args, 0)
    torch.manual_seed(args.seed)
    plan = args.plans["vae"]
    size = components.PRESETS[args.preset]
    x_all = _images(data, args.device)
    vae = components.vae(size, data.images.shape[1]).to(args.device).train()
    opt = _optimizer(vae.parameters(), args, plan.lr, 0.0)
    clock = StageClock(plan)

    def step_fn(x):
        with _autocast(args):
            post = vae.encode(x).latent_dist
            rec = vae.decode(post.sample(generator=g)).sample
        rec = rec.float()
        l1 = (rec - x).abs().mean()
        grad = (rec.diff(dim=-1) - x.diff(dim=-1)).abs().mean() + (
            rec.diff(dim=-2) - x.diff(dim=-2)
        ).abs().mean()
        kl = post.kl().float().mean()
        return l1 + 0.5 * grad + args.vae_kl * kl, l1, kl

    step_fn = _maybe_compile(step_fn, "vae", args, log)
    for step in clock:
        _set_lr(opt, _lr_at(clock, plan.lr, 200))
        idx = torch.randint(len(x_all), (plan.batch,), generator=g, device=args.device)
        x = x_all[idx]
        if clock.progress < 0.9:
            c = x.shape[-1] // 2
            oy, ox = (torch.randint(0, c // 4 + 1, (2,), generator=gc) * 4).tolist()
            x = x[:, :, oy : oy + c, ox : ox + c]
        loss, l1, kl = step_fn(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if clock.last(args.log_every):
            log(
                {
                    "stage": "vae",
                    "step": step,
                    "loss": round(loss.item(), 5),
                    "l1": round(l1.item(), 5),
                    "kl": round(kl.item(), 2),
                    "elapsed_s": round(clock.elapsed, 1),
                }
            )
    vae.eval()
    steps = clock.step
    # SD's scaling_factor convention: latents * factor have unit variance over the data.
    with torch.no_grad():
        mean, std = _encode_all(vae, x_all)
        sample = mean + std * torch.randn(mean.shape, generator=g, device=args.device)
        factor = float(1.0 / sample.std())
        rec = torch.cat([vae.decode(mean[i : i + 256]).sample for i in range(0, len(mean), 256)])
        mse = float(((rec.clamp(-1, 1) - x_all) ** 2).mean())
    vae.register_to_config(scaling_factor=factor)
    vae.save_pretrained(args.work / "vae", safe_serialization=True)
    psnr = 10 * math.log10(4 / max(mse, 1e-12))
    log(
        {
            "stage": "vae",
            "done": True,
            "steps": steps,
            "scaling_factor": factor,
            "psnr_db": round(psnr, 2),
            "elapsed_s": round(clock.elapsed, 1),
        }
    )
    _summary(
        args,
        "vae",
        clock.elapsed,
        {
            "psnr_db": psnr,
            "scaling_factor": factor,
            "steps": steps,
            "batch": plan.batch,
            "budget_s": plan.seconds,
        },
    )


@torch.no_grad()
def _encode_all(vae, x_all: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    means, stds = [], []
    for i in range(0, len(x_all), 256):
        d = vae.encode(x_all[i : i + 256]).latent_dist
        means.append(d.mean)
        stds.append(d.std)
    return torch.cat(means), torch.cat(stds)


def _caption_ids(data: EmojiDataset, tokenizer) -> torch.Tensor:
    """Token ids (N, 4, 77) per image: full caption, without style, without background, name
    only. Training draws one per step, so short prompts work as well as the full template.
    Tokenized once per (emoji, style, background), not once per variant."""
    keys = list(
        zip(
            data.labels.tolist(),
            data.styles_idx.tolist(),
            data.backgrounds_idx.tolist(),
            strict=True,
        )
    )
    unique = list(dict.fromkeys(keys))
    rows = []
    for e, si, bi in unique:
        name, s, b = data.emoji[e].name, data.styles[si], data.backgrounds[bi]
        rows.append(
            [
                caption(name, s, b),
                caption(name, None, b),
                caption(name, s, None),
                caption(name, None, None),
            ]
        )
    flat = [c for r in rows for c in r]
    ids = tokenizer(
        flat,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids.view(len(unique), 4, -1)
    where = {k: i for i, k in enumerate(unique)}
    return ids[torch.tensor([where[k] for k in keys])]


def _draw_ids(
    ids: torch.Tensor, empty: torch.Tensor, idx: torch.Tensor, p_empty: float, g: torch.Generator
) -> torch.Tensor:
    """One caption form per image (``ids``, ``empty`` and ``g`` on ``idx``'s device)."""
    n = len(idx)
    # Full caption half the time, each shortened form a sixth; p_empty unconditional (for CFG).
    weights = torch.tensor([3.0, 1.0, 1.0, 1.0], device=idx.device)
    choice = torch.multinomial(weights, n, replacement=True, generator=g)
    out = ids[idx, choice]
    drop = torch.rand(n, generator=g, device=idx.device) < p_empty
    return torch.where(drop[:, None], empty[None], out)


def _diffusion_loss(eps_pred: torch.Tensor, noise: torch.Tensor, snr: torch.Tensor) -> torch.Tensor:
    """Epsilon MSE with Min-SNR-5 weights (Hang et al. 2023, eq. 13 for epsilon: min(SNR, γ)/SNR),
    which the paper reports converges ~3x faster than the plain loss."""
    w = torch.clamp(snr, max=5.0) / snr
    per = ((eps_pred.float() - noise) ** 2).mean(dim=(1, 2, 3))
    return (w * per).mean()


def _noise_setup(device: str):
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(**components.scheduler_config())
    ac = sched.alphas_cumprod.to(device)
    return sched, ac, ac / (1 - ac)


def _noisy_latents(mean, std, factor, idx, ac, g):
    """z_t = sqrt(ᾱ_t) z_0 + sqrt(1 - ᾱ_t) ε (DDPM, Ho et al. 2020 eq. 4), z_0 drawn from the
    VAE posterior of each image."""
    z0 = (
        mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=g, device=mean.device)
    ) * factor
    noise = torch.randn(z0.shape, generator=g, device=z0.device)
    t = torch.randint(0, len(ac), (len(idx),), generator=g, device=z0.device)
    a = ac[t][:, None, None, None]
    return a.sqrt() * z0 + (1 - a).sqrt() * noise, noise, t


def _tokenizer_ids(data: EmojiDataset, tokenizer, device: str):
    ids = _caption_ids(data, tokenizer).to(device)
    empty = (
        tokenizer(
            [""], padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt"
        )
        .input_ids[0]
        .to(device)
    )
    return ids, empty


def stage_unet(data: EmojiDataset, args, log: Log) -> None:
    """Text encoder and UNet trained together from scratch through the diffusion loss."""
    from diffusers import AutoencoderKL

    from engine.training.tokenizer import build_clip_tokenizer

    g, _ = _generators(args, 1)
    torch.manual_seed(args.seed + 1)
    plan = args.plans["unet"]
    size = components.PRESETS[args.preset]
    all_captions = [data.caption(i) for i in range(len(data))]
    if args.resume and (args.work / "tokenizer").exists():
        from transformers import CLIPTokenizer

        tokenizer = CLIPTokenizer.from_pretrained(args.work / "tokenizer")
    else:
        tokenizer = build_clip_tokenizer(sorted(set(all_captions)), args.work / "tokenizer")
    ids, empty = _tokenizer_ids(data, tokenizer, args.device)

    vae = AutoencoderKL.from_pretrained(args.work / "vae").to(args.device).eval()
    mean, std = _encode_all(vae, _images(data, args.device))
    factor = vae.config.scaling_factor
    latent_size = mean.shape[-1]
    del vae

    if args.resume and (args.work / "unet").exists():
        # Continue from the last saved (EMA) weights, e.g. a CPU run finished on a GPU.
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

        text = CLIPTextModel.from_pretrained(args.work / "text_encoder").to(args.device).train()
        unet = UNet2DConditionModel.from_pretrained(args.work / "unet").to(args.device).train()
        log({"stage": "unet", "resumed_from": str(args.work / "unet")})
    else:
        text = (
            components.text_encoder(
                size, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id
            )
            .to(args.device)
            .train()
        )
        unet = components.unet(size, latent_size).to(args.device).train()
    ema_text, ema_unet = copy.deepcopy(text).eval(), copy.deepcopy(unet).eval()
    params = list(text.parameters()) + list(unet.parameters())
    opt = _optimizer(params, args, plan.lr, 0.01)
    _, ac, snr_all = _noise_setup(args.device)

    def step_fn(zt, t, tokens, noise):
        with _autocast(args):
            cond = text(tokens)[0]
            pred = unet(zt, t, cond).sample
        return _diffusion_loss(pred, noise, snr_all[t])

    step_fn = _maybe_compile(step_fn, "unet", args, log)
    clock = StageClock(plan)
    loss = torch.zeros(())
    for step in clock:
        _set_lr(opt, _lr_at(clock, plan.lr, 200))
        idx = torch.randint(len(mean), (plan.batch,), generator=g, device=args.device)
        zt, noise, t = _noisy_latents(mean, std, factor, idx, ac, g)
        loss = step_fn(zt, t, _draw_ids(ids, empty, idx, 0.1, g), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        _ema_update(ema_unet, unet, step, args.ema)
        _ema_update(ema_text, text, step, args.ema)
        if clock.last(args.log_every):
            log(
                {
                    "stage": "unet",
                    "step": step,
                    "loss": round(loss.item(), 5),
                    "lr": round(opt.param_groups[0]["lr"], 6),
                    "elapsed_s": round(clock.elapsed, 1),
                }
            )
        if args.save_every and step and step % args.save_every == 0:
            _save_unet(args, ema_text, ema_unet)
    _save_unet(args, ema_text, ema_unet)
    log({"stage": "unet", "done": True, "steps": clock.step, "elapsed_s": round(clock.elapsed, 1)})
    _summary(
        args,
        "unet",
        clock.elapsed,
        {
            "steps": clock.step,
            "batch": plan.batch,
            "final_loss": loss.item(),
            "budget_s": plan.seconds,
        },
    )


def _save_unet(args, text, unet) -> None:
    text.save_pretrained(args.work / "text_encoder", safe_serialization=True)
    unet.save_pretrained(args.work / "unet", safe_serialization=True)


def stage_controlnet(data: EmojiDataset, args, log: Log) -> None:
    """A ControlNet copied from the UNet's encoder, trained on canny maps of the same images
    with UNet and text encoder frozen. Half the captions are dropped (as in Zhang et al. 2023,
    sec. 3.3) so the edges alone must carry the shape."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    g, _ = _generators(args, 2)
    torch.manual_seed(args.seed + 2)
    plan = args.plans["controlnet"]
    size = components.PRESETS[args.preset]
    tokenizer = CLIPTokenizer.from_pretrained(args.work / "tokenizer")
    ids, empty = _tokenizer_ids(data, tokenizer, args.device)
    vae = AutoencoderKL.from_pretrained(args.work / "vae").to(args.device).eval()
    text = CLIPTextModel.from_pretrained(args.work / "text_encoder").to(args.device).eval()
    unet = UNet2DConditionModel.from_pretrained(args.work / "unet").to(args.device).eval()
    for m in (vae, text, unet):
        m.requires_grad_(False)
    mean, std = _encode_all(vae, _images(data, args.device))
    factor = vae.config.scaling_factor
    del vae
    edges = torch.from_numpy(canny(data.images)).to(args.device)  # uint8 (N, H, W, 3)

    net = components.controlnet_from_unet(unet, size).to(args.device).train()
    ema = copy.deepcopy(net).eval()
    opt = _optimizer(net.parameters(), args, plan.lr, 0.0)
    _, ac, snr_all = _noise_setup(args.device)

    def step_fn(zt, t, tokens, hint, noise):
        with _autocast(args):
            with torch.no_grad():
                cond = text(tokens)[0]
            down, mid = net(zt, t, cond, controlnet_cond=hint, return_dict=False)
            pred = unet(
                zt, t, cond, down_block_additional_residuals=down, mid_block_additional_residual=mid
            ).sample
        return _diffusion_loss(pred, noise, snr_all[t])

    step_fn = _maybe_compile(step_fn, "controlnet", args, log)
    clock = StageClock(plan)
    loss = torch.zeros(())
    for step in clock:
        _set_lr(opt, _lr_at(clock, plan.lr, 100))
        idx = torch.randint(len(mean), (plan.batch,), generator=g, device=args.device)
        zt, noise, t = _noisy_latents(mean, std, factor, idx, ac, g)
        hint = edges[idx].permute(0, 3, 1, 2).float().div(255)
        loss = step_fn(zt, t, _draw_ids(ids, empty, idx, 0.5, g), hint, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        _ema_update(ema, net, step, args.ema)
        if clock.last(args.log_every):
            log(
                {
                    "stage": "controlnet",
                    "step": step,
                    "loss": round(loss.item(), 5),
                    "elapsed_s": round(clock.elapsed, 1),
                }
            )
    ema.save_pretrained(args.work / "controlnet", safe_serialization=True)
    log(
        {
            "stage": "controlnet",
            "done": True,
            "steps": clock.step,
            "elapsed_s": round(clock.elapsed, 1),
        }
    )
    _summary(
        args,
        "controlnet",
        clock.elapsed,
        {"steps": clock.step, "batch": plan.batch, "budget_s": plan.seconds},
    )


def stage_classifier(data: EmojiDataset, args, log: Log) -> None:
    from engine.training.classifier import train_classifier

    plan = args.plans["classifier"]
    model, info = train_classifier(
        data.images,
        data.labels,
        len(data.emoji),
        steps=plan.steps,
        seconds=plan.seconds,
        batch=plan.batch,
        lr=plan.lr,
        seed=args.seed + 3,
        device=args.device,
        log=log,
        bf16=args.bf16,
        log_every=args.log_every,
    )
    model.save(
        args.work / "classifier",
        [e.name for e in data.emoji],
        {"emoji": [e.char for e in data.emoji], "val_top1": info["val_top1"]},
    )
    log({"stage": "classifier", "done": True, **info})
    _summary(
        args,
        "classifier",
        info["train_seconds"],
        {**info, "batch": plan.batch, "budget_s": plan.seconds},
    )


#: Largest file the export writes: the device tool returns files of at most 16 MiB, and the
#: repository keeps every file under that too. Larger weights are sharded by diffusers.
MAX_FILE = "15MB"


def stage_export(data: EmojiDataset, args, log: Log) -> None:
    """Assemble the diffusers folders: <out>/sfumato-tiny (+ -canny), eval classifier, fit set.

    Weights are stored in float16 (half the bytes; every file <= 16 MB). Loading upcasts: the
    text encoder's config names float32 (transformers' ``dtype="auto"`` reads it), diffusers
    models load as float32 unless asked otherwise, and the engine asks for the dtype fastest on
    its device (float32 on CPUs, float16 on GPUs)."""
    import shutil

    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        DPMSolverMultistepScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTokenizer

    t0 = time.monotonic()
    out = args.out
    half = {"torch_dtype": torch.float16}
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL.from_pretrained(args.work / "vae", **half),
        text_encoder=CLIPTextModel.from_pretrained(args.work / "text_encoder", dtype=torch.float16),
        tokenizer=CLIPTokenizer.from_pretrained(args.work / "tokenizer"),
        unet=UNet2DConditionModel.from_pretrained(args.work / "unet", **half),
        scheduler=DPMSolverMultistepScheduler(**components.scheduler_config()),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    model_dir = out / "sfumato-tiny"
    pipe.save_pretrained(model_dir, safe_serialization=True, max_shard_size=MAX_FILE)
    _config_dtype_float32(model_dir / "text_encoder" / "config.json")
    # transformers 5 saves only tokenizer.json; SD folders also carry CLIP's two source files,
    # which older transformers and other tools read.
    for f in ("vocab.json", "merges.txt"):
        shutil.copy(args.work / "tokenizer" / f, model_dir / "tokenizer" / f)
    write_vocabulary(data, model_dir)
    if (args.work / "controlnet").exists():
        ControlNetModel.from_pretrained(args.work / "controlnet", **half).save_pretrained(
            out / "sfumato-tiny-canny", safe_serialization=True, max_shard_size=MAX_FILE
        )
    if (args.work / "classifier").exists():
        dest = args.eval_out / "sfumato-tiny-classifier"
        dest.mkdir(parents=True, exist_ok=True)
        for f in ("model.safetensors", "config.json"):
            shutil.copy(args.work / "classifier" / f, dest / f)
    write_fit_set(data, args.fitset_out / "sfumato-tiny")
    logs = model_dir / "training-logs"
    logs.mkdir(exist_ok=True)
    for f in ("summary.json", "log.jsonl"):
        if (args.work / f).exists():
            shutil.copy(args.work / f, logs / f)
    log({"stage": "export", "out": str(out), "dtype": "float16"})
    _summary(args, "export", time.monotonic() - t0, {"dtype": "float16"})


def _config_dtype_float32(path: Path) -> None:
    """Name float32 in a transformers config: loading without a dtype then upcasts the fp16
    weights (transformers 5 would otherwise keep them in fp16, slow and unsupported on CPUs)."""
    cfg = json.loads(path.read_text())
    for key in ("dtype", "torch_dtype"):
        if key in cfg:
            cfg[key] = "float32"
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def write_vocabulary(data: EmojiDataset, model_dir: Path) -> Path:
    """``vocabulary.json`` beside the model: the words its prompts are made of (emoji names,
    styles, colours), the caption template and a few example prompts. The engine reports it
    in /v1/models, and the app turns it into placeholder, prompt ideas and completion."""
    from engine.training import vocabulary

    vocab = vocabulary.from_dataset(
        [e.name for e in data.emoji], [e.char for e in data.emoji], data.styles, data.backgrounds
    )
    return vocabulary.save(vocab, model_dir)


def _summary(args, stage: str, seconds: float, extra: dict) -> None:
    path = args.work / "summary.json"
    summary = json.loads(path.read_text()) if path.exists() else {}
    summary[stage] = {"seconds": round(seconds, 1), **extra}
    summary["settings"] = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if k not in ("plans", "recipe_settings")
    }
    summary["plans"] = {k: vars(v) for k, v in args.plans.items()}
    if args.recipe_settings is not None:
        summary["recipe"] = dataclasses.asdict(args.recipe_settings)
    summary["torch"] = torch.__version__
    summary["device_name"] = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"cpu x{torch.get_num_threads()} threads"
    )
    path.write_text(json.dumps(summary, indent=1))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train the embedded model from scratch.")
    p.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        help="everything in one command with a time budget per stage (recipes.py): "
        "data, stages, fp16 export to <work>/export, evaluation, bundle",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="with --recipe: the same run on the CPU with toy budgets, model and data",
    )
    p.add_argument(
        "--dataset-archive",
        type=Path,
        default=None,
        help="a sprite archive (python -m engine.training.dataset --sprite-archive): "
        "build the dataset from it, without fonts, Twemoji or Qt",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes that compose the dataset (0: one per CPU core)",
    )
    p.add_argument(
        "--compile",
        default=None,
        help="comma-separated stages whose step runs through torch.compile "
        "(default: the recipe's choice, none by hand)",
    )
    p.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/sfumato-train"),
        help="checkpoints, dataset, log.jsonl, summary.json",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="models folder the export writes (default: resources/models; with "
        "--recipe: <work>/export/resources/models)",
    )
    p.add_argument("--eval-out", type=Path, default=None)
    p.add_argument("--fitset-out", type=Path, default=None)
    p.add_argument("--stages", default=",".join(STAGES))
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads on CPU (0: default)")
    p.add_argument("--preset", default="cpu", choices=sorted(components.PRESETS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64, help="image size in pixels")
    p.add_argument("--styles", default="noto,twemoji")
    p.add_argument("--variants", type=int, default=1, help="jittered copies per combination")
    p.add_argument("--limit", type=int, default=None, help="only the first N emoji (quick runs)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--vae-steps", type=int, default=4000)
    p.add_argument("--vae-lr", type=float, default=1e-3)
    p.add_argument("--vae-kl", type=float, default=1e-7)
    p.add_argument("--unet-steps", type=int, default=6000)
    p.add_argument("--unet-lr", type=float, default=6e-4)
    p.add_argument("--controlnet-steps", type=int, default=1500)
    p.add_argument("--controlnet-lr", type=float, default=3e-4)
    p.add_argument("--classifier-steps", type=int, default=1500)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument(
        "--resume",
        action="store_true",
        help="UNet stage: start from <work>/unet and <work>/text_encoder",
    )
    p.add_argument("--save-every", type=int, default=1000, help="UNet checkpoint interval")
    args = p.parse_args(argv)
    if args.dry_run and not args.recipe:
        p.error("--dry-run needs --recipe")
    return _with_plans(args)


def _with_plans(args: argparse.Namespace) -> argparse.Namespace:
    """Fill ``args.plans`` (per stage) and the recipe's settings, or the step-count ones."""
    if args.recipe:
        recipe: Recipe = RECIPES[args.recipe]
        if args.dry_run:
            recipe = dry_run(recipe)
        args.recipe_settings = recipe
        args.device = recipe.device
        args.preset = recipe.preset
        args.variants = recipe.variants
        args.limit = recipe.limit
        args.ema = recipe.ema
        args.bf16 = recipe.bf16
        args.log_every = recipe.log_every
        args.save_every = 0
        args.stages = ",".join(STAGES)
        compile_ = (
            recipe.compile
            if args.compile is None
            else tuple(c for c in args.compile.split(",") if c)
        )
        args.plans = {
            name: Plan(
                batch=getattr(recipe, name).batch,
                lr=getattr(recipe, name).lr,
                seconds=getattr(recipe, name).seconds,
            )
            for name in ("classifier", "vae", "unet", "controlnet")
        }
        export = args.work / "export"
        args.out = args.out or export / "resources" / "models"
        args.eval_out = args.eval_out or export / "resources" / "eval"
        args.fitset_out = args.fitset_out or export / "resources" / "fitsets"
    else:
        args.recipe_settings = None
        args.bf16 = False
        args.log_every = 100
        compile_ = tuple(c for c in (args.compile or "").split(",") if c)
        args.plans = {
            "classifier": Plan(batch=64, lr=2e-3, steps=args.classifier_steps),
            "vae": Plan(batch=args.batch, lr=args.vae_lr, steps=args.vae_steps),
            "unet": Plan(batch=args.batch, lr=args.unet_lr, steps=args.unet_steps),
            "controlnet": Plan(
                batch=args.batch, lr=args.controlnet_lr, steps=args.controlnet_steps
            ),
        }
        args.out = args.out or REPO / "resources" / "models"
        args.eval_out = args.eval_out or REPO / "resources" / "eval"
        args.fitset_out = args.fitset_out or REPO / "resources" / "fitsets"
    args.compile = compile_
    return args


def build_data(args, log: Log) -> EmojiDataset:
    """Compose the dataset from the sprite archive (``--dataset-archive``, or one rendered
    here and kept in the work folder), in one process per CPU core."""
    t0 = time.monotonic()
    styles = tuple(args.styles.split(","))
    if args.dataset_archive:
        sprites = SpriteSet.load(args.dataset_archive)
        if args.limit:
            sprites = SpriteSet(
                sprites.sprites[: args.limit], sprites.emoji[: args.limit], sprites.styles
            )
        source = str(args.dataset_archive)
    else:
        sprites = render_sprites(args.size, styles, args.limit)
        sprites.save(args.work / "data" / "sprites.npz")
        source = "rendered here"
    workers = args.workers or os.cpu_count() or 1
    data = compose_dataset(
        sprites, args.size, args.variants, seed=args.seed, workers=min(workers, len(sprites.emoji))
    )
    data.save(args.work / "data")
    seconds = time.monotonic() - t0
    _summary(
        args,
        "data",
        seconds,
        {
            "images": len(data),
            "emoji": len(data.emoji),
            "styles": data.styles,
            "variants": args.variants,
            "sprites": source,
            "workers": workers,
        },
    )
    log(
        {
            "stage": "data",
            "images": len(data),
            "emoji": len(data.emoji),
            "elapsed_s": round(seconds, 1),
        }
    )
    return data


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    t_start = time.monotonic()
    args.work.mkdir(parents=True, exist_ok=True)
    log = Log(args.work / "log.jsonl")
    stages = args.stages.split(",")
    data_dir = args.work / "data"
    if "data" in stages or not (data_dir / "images.npz").exists():
        data = build_data(args, log)
    else:
        data = EmojiDataset.load(data_dir)
    for name, fn in (
        ("classifier", stage_classifier),
        ("vae", stage_vae),
        ("unet", stage_unet),
        ("controlnet", stage_controlnet),
        ("export", stage_export),
    ):
        if name in stages:
            fn(data, args, log)
    if args.recipe_settings is not None:
        finish_recipe(data, args, log, t_start)


def finish_recipe(data: EmojiDataset, args, log: Log, t_start: float) -> None:
    """Evaluate the exported weights into their training-logs/metrics.json, then pack the
    export into parts the device tool can return (engine/training/bundle.py)."""
    from engine.training import bundle, evaluate

    recipe: Recipe = args.recipe_settings
    model_dir = args.out / "sfumato-tiny"
    plan = recipe.evaluation
    t0 = time.monotonic()
    metrics = evaluate.evaluate_all(
        data,
        model_dir,
        args.out / "sfumato-tiny-canny",
        args.eval_out / "sfumato-tiny-classifier",
        device=args.device,
        prompts=plan.prompts,
        fd_count=plan.fd_count,
        controlnet_images=plan.controlnet_images,
        steps=plan.steps,
        batch=plan.batch,
        figures=args.work / "export" / "docs" / "images",
        grid_subjects=plan.grid_subjects,
    )
    metrics["recipe"] = {
        "name": recipe.name,
        "train_seconds_budget": recipe.train_seconds,
        "wall_seconds_to_evaluated": round(time.monotonic() - t_start, 1),
    }
    path = model_dir / "training-logs" / "metrics.json"
    path.write_text(json.dumps(metrics, indent=1))
    _summary(args, "evaluate", time.monotonic() - t0, {"metrics": str(path)})
    for f in ("summary.json", "log.jsonl"):
        (model_dir / "training-logs" / f).write_bytes((args.work / f).read_bytes())
    parts = bundle.pack(args.work / "export", args.work / "bundle")
    log(
        {
            "stage": "done",
            "wall_s": round(time.monotonic() - t_start, 1),
            "passed": metrics.get("passed"),
            "bundle": [str(p) for p in parts],
        }
    )


if __name__ == "__main__":
    main()
