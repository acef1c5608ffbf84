"""ControlVideo (Zhao, Wang, Bao, Li, Zhu): one-shot tuned video editing.

Key-frame attention in every self-attention of the UNet and the ControlNet, temporal attention
in the UNet's down/up transformer blocks (:mod:`engine.video.attention`). One-shot tuning trains
only attn1's ``to_out`` (UNet and ControlNet) and the temporal layers on the source video with
the source prompt (ε-MSE, t uniform, AdamW lr 3e-5, weight decay 1e-2, grad clip 1). Then DDIM
inversion with the tuned networks (source prompt, no CFG) and DDIM sampling with the target
prompt, CFG and the per-frame control. Tuned weights are cached per video selection + model +
ControlNet + tuning recipe, so a second prompt on the same clip starts at once. All frames are
edited together (any number, not only 8).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from engine.video import attention as va
from engine.video.denoise import (
    VideoNets,
    control_tensor,
    ddim_grid,
    ddim_invert,
    ddim_sample,
    decode_latents,
    encode_frames,
    predict_eps,
    text_embeddings,
)
from engine.video_protocol import VideoEditParams

Progress = Callable[[str, int], None]


def units(n_frames: int, p: VideoEditParams) -> int:
    return p.tuning_steps + 2 * p.steps


def cache_key(
    video_hash: str, model_path: str, controlnet_path: str | None, p: VideoEditParams
) -> str:
    """What the tuned weights depend on: the frames (file hash + selection + size), the
    networks, the control maps' recipe, the source prompt and the tuning recipe."""
    recipe = {
        "video": video_hash,
        "frames": p.frames.model_dump(),
        "size": [p.width, p.height, p.fit],
        "model": model_path,
        "controlnet": controlnet_path,
        "control": p.control.model_dump(exclude={"scale"}),
        "scale": p.control.scale,
        "prompt": p.source_prompt,
        "steps": p.tuning_steps,
        "lr": p.learning_rate,
        "seed": p.seed,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:24]


def trainable(nets: VideoNets, temporal: torch.nn.ModuleDict) -> dict[str, torch.nn.Parameter]:
    """The parameters ControlVideo tunes, by a stable name."""
    params: dict[str, torch.nn.Parameter] = {}
    for prefix, model in (("unet", nets.unet), ("controlnet", nets.controlnet)):
        if model is None:
            continue
        for name in model.attn_processors:
            if name.endswith("attn1.processor"):
                out = va.attn_module(model, name).to_out[0]
                base = f"{prefix}.{name.removesuffix('.processor')}.to_out.0"
                params[f"{base}.weight"] = out.weight
                if out.bias is not None:
                    params[f"{base}.bias"] = out.bias
    for key, layer in temporal.items():
        for pname, param in layer.named_parameters():
            params[f"temporal.{key}.{pname}"] = param
    return params


def mixed_precision(dtype: torch.dtype) -> bool:
    """Whether tuning networks held in ``dtype`` needs float32 master weights (any half dtype,
    on every device).

    AdamW's step on a weight is lr·m̂ / (√v̂ + ε) with v = (1 − β₂)·g² = 1e-3·g² and ε = 1e-8. In
    float16, ε rounds to 0 and so does v for every |g| < 8e-3 (float16's smallest subnormal is
    6e-8; tuning's gradients measure |g| ≤ 2e-3 on the embedded model): the first step divides
    by zero — 0/0 where a gradient is 0, as for the temporal layers whose output projection
    starts at zero — and every tuned weight becomes NaN: a black video. In bfloat16 nothing
    overflows, but a step of lr = 3e-5 is below most weights' rounding (8 mantissa bits), so
    most steps are lost. Hence mixed precision (Micikevicius et al. 2018, as the official code's
    fp16 training): the tuned weights and AdamW's state in float32, the forward in the networks'
    dtype under autocast, and float16's loss scaled so that its gradients do not underflow.
    """
    return dtype in (torch.float16, torch.bfloat16)


def tune(
    nets: VideoNets,
    z0: torch.Tensor,
    cond: torch.Tensor,
    control: torch.Tensor | None,
    params: dict[str, torch.nn.Parameter],
    p: VideoEditParams,
    progress: Progress,
) -> list[float]:
    """One-shot tuning; returns the loss of every step. In half precision the tuned weights
    train as float32 master copies (:func:`mixed_precision`) and go back to the networks'
    dtype at the end."""
    gen = torch.Generator("cpu").manual_seed(p.seed)
    ac = nets.alphas_cumprod
    n_train = len(ac)
    for param in params.values():
        param.requires_grad_(True)
    master = [q for q in params.values()]
    opt = torch.optim.AdamW(master, lr=p.learning_rate, weight_decay=1e-2)
    losses = []
    device_type = nets.device.type
    use_amp = mixed_precision(nets.dtype)
    if use_amp:
        for q in master:
            q.data = q.data.float()
    # bfloat16 has float32's range: only float16's gradients need the loss scaled
    scaler = torch.amp.GradScaler(device_type, enabled=use_amp and nets.dtype == torch.float16)
    try:
        for _ in range(p.tuning_steps):
            t = int(torch.randint(0, n_train, (1,), generator=gen))
            noise = torch.randn(z0.shape, generator=gen).to(z0)
            a = float(ac[t])
            zt = a**0.5 * z0 + (1 - a) ** 0.5 * noise
            with torch.autocast(device_type, dtype=nets.dtype, enabled=use_amp):
                eps = predict_eps(nets, zt, t, cond, control, p.control.scale, alpha=a)
            loss = torch.nn.functional.mse_loss(eps.float(), noise.float())
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(master, 1.0)
            scaler.step(opt)  # skipped (and the scale lowered) where a gradient overflowed
            scaler.update()
            losses.append(float(loss.detach()))
            progress("tuning", 1)
    finally:
        for param in params.values():
            param.requires_grad_(False)
            if use_amp:
                param.data = param.data.to(nets.dtype)
    return losses


def edit(
    nets: VideoNets,
    frames: np.ndarray,
    maps: np.ndarray,
    p: VideoEditParams,
    progress: Progress,
    cache_file: Path | None = None,
) -> tuple[np.ndarray, dict]:
    """Tune (or load the cached tuning), invert, sample. Returns (frames, info) where info
    says whether the tuning came from the cache and its losses."""
    from safetensors.torch import load_file, save_file

    z0 = encode_frames(nets, frames)
    ctrl = control_tensor(maps, nets) if nets.controlnet is not None else None
    src = text_embeddings(nets, p.source_prompt)
    tgt = text_embeddings(nets, p.target_prompt)
    unc = text_embeddings(nets, p.negative_prompt)
    before_u, before_c, temporal = va.install_controlvideo(nets.unet, nets.controlnet, nets.layout)
    params = trainable(nets, temporal)
    originals = {k: v.detach().clone() for k, v in params.items() if not k.startswith("temporal.")}
    info: dict = {"cached": False, "losses": []}
    try:
        if cache_file is not None and cache_file.is_file():
            state = load_file(str(cache_file))
            with torch.no_grad():
                for k, v in state.items():
                    params[k].copy_(v.to(params[k]))
            info["cached"] = True
            progress("tuning", p.tuning_steps)
        elif p.tuning_steps:
            if nets.device.type == "cuda":
                nets.unet.enable_gradient_checkpointing()
            try:
                info["losses"] = tune(nets, z0, src, ctrl, params, p, progress)
            finally:
                if nets.device.type == "cuda":
                    nets.unet.disable_gradient_checkpointing()
            if cache_file is not None:
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache_file.with_name(cache_file.name + ".part")
                save_file({k: v.detach().cpu().contiguous() for k, v in params.items()}, str(tmp))
                tmp.replace(cache_file)
        grid = ddim_grid(nets, p.steps)
        zs = ddim_invert(
            nets, z0, grid, src, ctrl, p.control.scale, on_step=lambda _i: progress("inversion", 1)
        )
        z = ddim_sample(
            nets,
            zs[-1],
            grid,
            tgt,
            ctrl,
            p.control.scale,
            p.cfg_scale,
            unc,
            on_step=lambda _i: progress("sampling", 1),
        )
        out = decode_latents(nets, z)
    finally:
        with torch.no_grad():  # the loaded model is shared: put its weights back
            for k, v in originals.items():
                params[k].copy_(v)
        va.restore(nets.unet, before_u)
        if nets.controlnet is not None and before_c is not None:
            va.restore(nets.controlnet, before_c)
    return out, info
