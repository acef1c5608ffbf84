"""Train the embedded model from nothing: data -> VAE -> text encoder + UNet -> ControlNet.

Every stage writes its result under ``--work`` and can be re-run alone (``--stages``); ``export``
assembles the diffusers folders under ``--out`` (the model, its canny ControlNet, the evaluation
classifier and the fit set). Losses go to ``<work>/log.jsonl``; the wall time of each stage to
``<work>/summary.json``, which the model card quotes.

CPU (what ships now; about 1.5 h of one core):

    python -m engine.training.train --work /tmp/sfumato-train --threads 1

GPU (bigger model and more steps; see docs/embedded-model.md):

    python -m engine.training.train --work /tmp/sfumato-train --device cuda --preset gpu \
        --batch 256 --vae-steps 20000 --unet-steps 60000 --controlnet-steps 20000
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from engine.training import components
from engine.training.dataset import EmojiDataset, build_dataset, caption, write_fit_set

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


def _lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    p = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


@torch.no_grad()
def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float) -> None:
    d = min(decay, (1 + step) / (10 + step))
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm, 1 - d)


def _images(data: EmojiDataset, device: str) -> torch.Tensor:
    return (torch.from_numpy(data.images).permute(0, 3, 1, 2).float() / 127.5 - 1).to(device)


# --- stages ----------------------------------------------------------------------------------


def stage_vae(data: EmojiDataset, args, log: Log) -> None:
    """AutoencoderKL with L1 + image-gradient L1 + a small KL; mostly on 32 px crops (4x
    cheaper, the network is convolutional), the last 10 % on whole images so the middle
    attention block sees full-size latents."""
    g = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    size = components.PRESETS[args.preset]
    x_all = _images(data, args.device)
    vae = components.vae(size, data.images.shape[1]).to(args.device).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, weight_decay=0.0)
    t0 = time.time()
    full_from = int(0.9 * args.vae_steps)
    for step in range(args.vae_steps):
        _set_lr(opt, _lr_at(step, args.vae_steps, args.vae_lr, 200))
        idx = torch.randint(len(x_all), (args.batch,), generator=g).to(args.device)
        x = x_all[idx]
        if step < full_from:
            c = x.shape[-1] // 2
            oy, ox = (torch.randint(0, c // 4 + 1, (2,), generator=g) * 4).tolist()
            x = x[:, :, oy:oy + c, ox:ox + c]
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample()).sample
        l1 = (rec - x).abs().mean()
        grad = ((rec.diff(dim=-1) - x.diff(dim=-1)).abs().mean()
                + (rec.diff(dim=-2) - x.diff(dim=-2)).abs().mean())
        kl = post.kl().mean()
        loss = l1 + 0.5 * grad + args.vae_kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == args.vae_steps - 1:
            log({"stage": "vae", "step": step, "loss": round(loss.item(), 5),
                 "l1": round(l1.item(), 5), "kl": round(kl.item(), 2),
                 "elapsed_s": round(time.time() - t0, 1)})
    vae.eval()
    # SD's scaling_factor convention: latents * factor have unit variance over the data.
    with torch.no_grad():
        mean, std = _encode_all(vae, x_all)
        sample = mean + std * torch.randn(mean.shape, generator=g).to(mean)
        factor = float(1.0 / sample.std())
        rec = torch.cat([vae.decode(mean[i:i + 256]).sample for i in range(0, len(mean), 256)])
        mse = float(((rec.clamp(-1, 1) - x_all) ** 2).mean())
    vae.register_to_config(scaling_factor=factor)
    vae.save_pretrained(args.work / "vae", safe_serialization=True)
    psnr = 10 * math.log10(4 / mse)
    log({"stage": "vae", "done": True, "scaling_factor": factor, "psnr_db": round(psnr, 2),
         "elapsed_s": round(time.time() - t0, 1)})
    _summary(args, "vae", time.time() - t0, {"psnr_db": psnr, "scaling_factor": factor,
                                             "steps": args.vae_steps})


@torch.no_grad()
def _encode_all(vae, x_all: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    means, stds = [], []
    for i in range(0, len(x_all), 256):
        d = vae.encode(x_all[i:i + 256]).latent_dist
        means.append(d.mean)
        stds.append(d.std)
    return torch.cat(means), torch.cat(stds)


def _caption_ids(data: EmojiDataset, tokenizer) -> torch.Tensor:
    """Token ids (N, 4, 77) per image: full caption, without style, without background, name
    only. Training draws one per step, so short prompts work as well as the full template."""
    rows = []
    for i in range(len(data)):
        name = data.emoji[data.labels[i]].name
        s = data.styles[data.styles_idx[i]]
        b = data.backgrounds[data.backgrounds_idx[i]]
        rows.append([caption(name, s, b), caption(name, None, b), caption(name, s, None),
                     caption(name, None, None)])
    flat = [c for r in rows for c in r]
    ids = tokenizer(flat, padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids
    return ids.view(len(data), 4, -1)


def _draw_ids(ids: torch.Tensor, empty: torch.Tensor, idx: torch.Tensor, p_empty: float,
              g: torch.Generator) -> torch.Tensor:
    n = len(idx)
    # Full caption half the time, each shortened form a sixth; p_empty unconditional (for CFG).
    choice = torch.multinomial(torch.tensor([3.0, 1.0, 1.0, 1.0]), n, replacement=True,
                               generator=g)
    out = ids[idx.cpu(), choice]
    drop = torch.rand(n, generator=g) < p_empty
    out[drop] = empty
    return out


def _diffusion_loss(eps_pred: torch.Tensor, noise: torch.Tensor, snr: torch.Tensor) -> torch.Tensor:
    """Epsilon MSE with Min-SNR-5 weights (Hang et al. 2023, eq. 13 for epsilon: min(SNR, γ)/SNR),
    which the paper reports converges ~3x faster than the plain loss."""
    w = torch.clamp(snr, max=5.0) / snr
    per = ((eps_pred - noise) ** 2).mean(dim=(1, 2, 3))
    return (w * per).mean()


def _noise_setup(device: str):
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(**components.scheduler_config())
    ac = sched.alphas_cumprod.to(device)
    return sched, ac, ac / (1 - ac)


def stage_unet(data: EmojiDataset, args, log: Log) -> None:
    """Text encoder and UNet trained together from scratch through the diffusion loss."""
    from diffusers import AutoencoderKL

    from engine.training.tokenizer import build_clip_tokenizer

    g = torch.Generator().manual_seed(args.seed + 1)
    torch.manual_seed(args.seed + 1)
    size = components.PRESETS[args.preset]
    all_captions = [data.caption(i) for i in range(len(data))]
    if args.resume and (args.work / "tokenizer").exists():
        from transformers import CLIPTokenizer

        tokenizer = CLIPTokenizer.from_pretrained(args.work / "tokenizer")
    else:
        tokenizer = build_clip_tokenizer(all_captions, args.work / "tokenizer")
    ids = _caption_ids(data, tokenizer)
    empty = tokenizer([""], padding="max_length", max_length=tokenizer.model_max_length,
                      return_tensors="pt").input_ids[0]

    vae = AutoencoderKL.from_pretrained(args.work / "vae").to(args.device).eval()
    mean, std = _encode_all(vae, _images(data, args.device))
    factor = vae.config.scaling_factor
    latent_size = mean.shape[-1]

    if args.resume and (args.work / "unet").exists():
        # Continue from the last saved (EMA) weights, e.g. a CPU run finished on a GPU.
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

        text = CLIPTextModel.from_pretrained(args.work / "text_encoder").to(args.device).train()
        unet = UNet2DConditionModel.from_pretrained(args.work / "unet").to(args.device).train()
        log({"stage": "unet", "resumed_from": str(args.work / "unet")})
    else:
        text = components.text_encoder(size, len(tokenizer), tokenizer.bos_token_id,
                                       tokenizer.eos_token_id).to(args.device).train()
        unet = components.unet(size, latent_size).to(args.device).train()
    ema_text, ema_unet = copy.deepcopy(text).eval(), copy.deepcopy(unet).eval()
    params = list(text.parameters()) + list(unet.parameters())
    opt = torch.optim.AdamW(params, lr=args.unet_lr, weight_decay=0.01)
    _, _, snr_all = _noise_setup(args.device)
    ac = _noise_setup(args.device)[1]
    t0 = time.time()
    for step in range(args.unet_steps):
        _set_lr(opt, _lr_at(step, args.unet_steps, args.unet_lr, 200))
        idx = torch.randint(len(mean), (args.batch,), generator=g).to(args.device)
        z0 = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=g).to(args.device)) * factor
        noise = torch.randn(z0.shape, generator=g).to(args.device)
        t = torch.randint(0, len(ac), (args.batch,), generator=g).to(args.device)
        a = ac[t][:, None, None, None]
        zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
        cond = text(_draw_ids(ids, empty, idx, 0.1, g).to(args.device))[0]
        pred = unet(zt, t, cond).sample
        loss = _diffusion_loss(pred, noise, snr_all[t])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        _ema_update(ema_unet, unet, step, args.ema)
        _ema_update(ema_text, text, step, args.ema)
        if step % 100 == 0 or step == args.unet_steps - 1:
            log({"stage": "unet", "step": step, "loss": round(loss.item(), 5),
                 "lr": round(opt.param_groups[0]["lr"], 6),
                 "elapsed_s": round(time.time() - t0, 1)})
        if args.save_every and step and step % args.save_every == 0:
            _save_unet(args, ema_text, ema_unet)
    _save_unet(args, ema_text, ema_unet)
    _summary(args, "unet", time.time() - t0, {"steps": args.unet_steps, "batch": args.batch,
                                              "final_loss": loss.item()})


def _save_unet(args, text, unet) -> None:
    text.save_pretrained(args.work / "text_encoder", safe_serialization=True)
    unet.save_pretrained(args.work / "unet", safe_serialization=True)


def canny(images: np.ndarray, low: int = 80, high: int = 160) -> np.ndarray:
    """OpenCV Canny edges, white on black, 3 channels, as diffusers' canny ControlNets take."""
    import cv2

    out = np.empty_like(images)
    for i, im in enumerate(images):
        e = cv2.Canny(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), low, high)
        out[i] = e[..., None]
    return out


def stage_controlnet(data: EmojiDataset, args, log: Log) -> None:
    """A ControlNet copied from the UNet's encoder, trained on canny maps of the same images
    with UNet and text encoder frozen. Half the captions are dropped (as in Zhang et al. 2023,
    sec. 3.3) so the edges alone must carry the shape."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    g = torch.Generator().manual_seed(args.seed + 2)
    torch.manual_seed(args.seed + 2)
    size = components.PRESETS[args.preset]
    tokenizer = CLIPTokenizer.from_pretrained(args.work / "tokenizer")
    ids = _caption_ids(data, tokenizer)
    empty = tokenizer([""], padding="max_length", max_length=tokenizer.model_max_length,
                      return_tensors="pt").input_ids[0]
    vae = AutoencoderKL.from_pretrained(args.work / "vae").to(args.device).eval()
    text = CLIPTextModel.from_pretrained(args.work / "text_encoder").to(args.device).eval()
    unet = UNet2DConditionModel.from_pretrained(args.work / "unet").to(args.device).eval()
    for m in (vae, text, unet):
        m.requires_grad_(False)
    mean, std = _encode_all(vae, _images(data, args.device))
    factor = vae.config.scaling_factor
    edges = torch.from_numpy(canny(data.images)).permute(0, 3, 1, 2).float().div(255).to(args.device)

    net = components.controlnet_from_unet(unet, size).to(args.device).train()
    ema = copy.deepcopy(net).eval()
    opt = torch.optim.AdamW(net.parameters(), lr=args.controlnet_lr, weight_decay=0.0)
    _, ac, snr_all = _noise_setup(args.device)
    t0 = time.time()
    for step in range(args.controlnet_steps):
        _set_lr(opt, _lr_at(step, args.controlnet_steps, args.controlnet_lr, 100))
        idx = torch.randint(len(mean), (args.batch,), generator=g).to(args.device)
        z0 = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=g).to(args.device)) * factor
        noise = torch.randn(z0.shape, generator=g).to(args.device)
        t = torch.randint(0, len(ac), (args.batch,), generator=g).to(args.device)
        a = ac[t][:, None, None, None]
        zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
        with torch.no_grad():
            cond = text(_draw_ids(ids, empty, idx, 0.5, g).to(args.device))[0]
        down, mid = net(zt, t, cond, controlnet_cond=edges[idx], return_dict=False)
        pred = unet(zt, t, cond, down_block_additional_residuals=down,
                    mid_block_additional_residual=mid).sample
        loss = _diffusion_loss(pred, noise, snr_all[t])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        _ema_update(ema, net, step, args.ema)
        if step % 100 == 0 or step == args.controlnet_steps - 1:
            log({"stage": "controlnet", "step": step, "loss": round(loss.item(), 5),
                 "elapsed_s": round(time.time() - t0, 1)})
    ema.save_pretrained(args.work / "controlnet", safe_serialization=True)
    _summary(args, "controlnet", time.time() - t0, {"steps": args.controlnet_steps})


def stage_classifier(data: EmojiDataset, args, log: Log) -> None:
    from engine.training.classifier import train_classifier

    model, info = train_classifier(data.images, data.labels, len(data.emoji),
                                   steps=args.classifier_steps, seed=args.seed + 3,
                                   device=args.device, log=log)
    model.save(args.work / "classifier", [e.name for e in data.emoji],
               {"emoji": [e.char for e in data.emoji], "val_top1": info["val_top1"]})
    log({"stage": "classifier", "done": True, **info})
    _summary(args, "classifier", info["train_seconds"], info)


def stage_export(data: EmojiDataset, args, log: Log) -> None:
    """Assemble the diffusers folders: <out>/sfumato-tiny (+ -canny), eval classifier, fit set."""
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        DPMSolverMultistepScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTokenizer

    out = args.out
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL.from_pretrained(args.work / "vae"),
        text_encoder=CLIPTextModel.from_pretrained(args.work / "text_encoder"),
        tokenizer=CLIPTokenizer.from_pretrained(args.work / "tokenizer"),
        unet=UNet2DConditionModel.from_pretrained(args.work / "unet"),
        scheduler=DPMSolverMultistepScheduler(**components.scheduler_config()),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out / "sfumato-tiny", safe_serialization=True)
    # transformers 5 saves only tokenizer.json; SD folders also carry CLIP's two source files,
    # which older transformers and other tools read.
    import shutil

    for f in ("vocab.json", "merges.txt"):
        shutil.copy(args.work / "tokenizer" / f, out / "sfumato-tiny" / "tokenizer" / f)
    if (args.work / "controlnet").exists():
        ControlNetModel.from_pretrained(args.work / "controlnet").save_pretrained(
            out / "sfumato-tiny-canny", safe_serialization=True)
    if (args.work / "classifier").exists():
        dest = args.eval_out / "sfumato-tiny-classifier"
        dest.mkdir(parents=True, exist_ok=True)
        for f in ("model.safetensors", "config.json"):
            shutil.copy(args.work / "classifier" / f, dest / f)
    write_fit_set(data, args.fitset_out / "sfumato-tiny")
    log({"stage": "export", "out": str(out)})


def _summary(args, stage: str, seconds: float, extra: dict) -> None:
    path = args.work / "summary.json"
    summary = json.loads(path.read_text()) if path.exists() else {}
    summary[stage] = {"seconds": round(seconds, 1), **extra}
    summary["settings"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    summary["torch"] = torch.__version__
    summary["device_name"] = (torch.cuda.get_device_name() if args.device.startswith("cuda")
                              else f"cpu x{torch.get_num_threads()} threads")
    path.write_text(json.dumps(summary, indent=1))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train the embedded model from scratch.")
    p.add_argument("--work", type=Path, default=Path("/tmp/sfumato-train"),
                   help="checkpoints, dataset, log.jsonl, summary.json")
    p.add_argument("--out", type=Path, default=REPO / "resources" / "models")
    p.add_argument("--eval-out", type=Path, default=REPO / "resources" / "eval")
    p.add_argument("--fitset-out", type=Path, default=REPO / "resources" / "fitsets")
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
    p.add_argument("--resume", action="store_true",
                   help="UNet stage: start from <work>/unet and <work>/text_encoder")
    p.add_argument("--save-every", type=int, default=1000, help="UNet checkpoint interval")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    args.work.mkdir(parents=True, exist_ok=True)
    log = Log(args.work / "log.jsonl")
    stages = args.stages.split(",")
    data_dir = args.work / "data"
    if "data" in stages or not (data_dir / "images.npz").exists():
        t0 = time.time()
        data = build_dataset(args.size, tuple(args.styles.split(",")), args.variants, args.limit,
                             seed=args.seed)
        data.save(data_dir)
        _summary(args, "data", time.time() - t0, {"images": len(data), "emoji": len(data.emoji),
                                                  "styles": data.styles})
        log({"stage": "data", "images": len(data), "emoji": len(data.emoji)})
    data = EmojiDataset.load(data_dir)
    for name, fn in (("classifier", stage_classifier), ("vae", stage_vae), ("unet", stage_unet),
                     ("controlnet", stage_controlnet), ("export", stage_export)):
        if name in stages:
            fn(data, args, log)


if __name__ == "__main__":
    main()
