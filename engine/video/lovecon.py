"""LOVECon (Liao, Deng et al.): training-free long-video editing in windows.

The video is edited ``window`` new frames at a time. Window k carries two context frames in
front — the video's first frame and the previous window's last one (window 0 repeats frame 0) —
whose outputs are dropped. Per window: DDIM inversion of the source (source prompt, conditional
only, every latent kept, the edit phrase's cross-attention collected for the mask), then DDIM
sampling with the target prompt, CFG and per-frame ControlNet, fusing the latent with the
inverted one of the same timestep by edit type (:mod:`engine.video.fusion`). Cross-window
attention in the UNet's deep blocks, sparse-causal attention in the ControlNet
(:mod:`engine.video.attention`). Smoothing: after the last step every frame of the window from
the first new one to the second last is replaced, in order, by the interpolation of its left
neighbour (already replaced; for the first new frame, the previous window's last frame — the
seam) and its right one; then every inner frame of the video is averaged, in order, with the
interpolation of its neighbours — by the interpolator the job names (optical flow built in, or RIFE from weights the
user supplies; :mod:`engine.video.interpolate`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from engine.errors import EngineError
from engine.video import attention as va
from engine.video.denoise import (
    VideoNets,
    control_tensor,
    ddim_grid,
    ddim_invert,
    ddim_sample,
    decode_latents,
    encode_frames,
    text_embeddings,
    token_indices,
)
from engine.video.fusion import CrossAttnMaps, fuse, mask_layers
from engine.video.interpolate import make_interpolator, reinterpolate, smooth
from engine.video_protocol import VideoEditParams, default_edit_phrase

#: progress(stage, units_done_in_this_call)
Progress = Callable[[str, int], None]


def windows(n: int, size: int) -> list[tuple[list[int], int]]:
    """[(frame indices of the window, number of context frames in front)], context = the
    video's first frame and the previous window's last frame."""
    out = []
    for a in range(0, n, size):
        ctx = [0, max(a - 1, 0)]
        out.append((ctx + list(range(a, min(n, a + size))), len(ctx)))
    return out


def mask_tokens(nets: VideoNets, p: VideoEditParams) -> list[int]:
    if p.edit_type == "style":
        return []
    phrase = p.edit_phrase.strip() or default_edit_phrase(
        p.source_prompt, p.target_prompt, p.edit_type
    )
    tokens = token_indices(nets.tokenizer, p.source_prompt, phrase) if phrase else []
    if not tokens:
        what = (
            "the object to keep, e.g. 'cows' in 'cows on grass' → 'cows on snow'"
            if p.edit_type == "background"
            else "the object that changes, e.g. 'hat' in 'a white hat' → 'a pink hat'"
        )
        raise EngineError(
            f"LOVECon's {p.edit_type} edit needs an edit phrase found in the source prompt "
            f"({what}); {phrase!r} is not in {p.source_prompt!r}.",
            "job.params.edit_phrase",
        )
    return tokens


def units(n_frames: int, p: VideoEditParams) -> int:
    return len(windows(n_frames, p.window)) * 2 * p.steps


def edit(
    nets: VideoNets, frames: np.ndarray, maps: np.ndarray, p: VideoEditParams, progress: Progress
) -> np.ndarray:
    """Edit (N, H, W, 3) uint8 frames with control maps of the same shape; returns the
    edited frames."""
    # first, so that bad RIFE weights fail the job before any denoising
    interp = (
        make_interpolator(p.interpolator, p.rife_weights, nets.device, nets.dtype)
        if p.smoothing
        else None
    )
    grid = ddim_grid(nets, p.steps)
    src = text_embeddings(nets, p.source_prompt)
    tgt = text_embeddings(nets, p.target_prompt)
    unc = text_embeddings(nets, p.negative_prompt)
    tokens = mask_tokens(nets, p)
    z_all = encode_frames(nets, frames)
    ctrl_all = control_tensor(maps, nets) if nets.controlnet is not None else None
    hw = tuple(z_all.shape[-2:])
    out = np.empty_like(frames)
    wins = windows(len(frames), p.window)
    before = va.install_lovecon(nets.unet, nets.controlnet, nets.layout)
    try:
        for k, (idx, n_ctx) in enumerate(wins):
            label = f"window {k + 1} of {len(wins)}"
            z0 = z_all[idx]
            ctrl = ctrl_all[idx] if ctrl_all is not None else None
            store = CrossAttnMaps(nets.layout, tokens, hw)
            attn2 = _install_store(nets.unet, store) if tokens else None
            try:
                zs = ddim_invert(
                    nets,
                    z0,
                    grid,
                    src,
                    ctrl,
                    p.control.scale,
                    on_step=lambda _i, label=label: progress(f"inversion ({label})", 1),
                )
            finally:
                if attn2 is not None:
                    va.restore(nets.unet, attn2)
            mask = store.mask(p.fusion.mask_threshold)
            s = grid.steps

            def fusion(step: int, z: torch.Tensor, zs=zs, mask=mask, s=s) -> torch.Tensor:
                return fuse(z, zs[s - step].to(z), mask, step, s, p.edit_type, p.fusion)

            z = ddim_sample(
                nets,
                zs[-1],
                grid,
                tgt,
                ctrl,
                p.control.scale,
                p.cfg_scale,
                unc,
                fuse=fusion,
                on_step=lambda _i, label=label: progress(label, 1),
            )
            imgs = decode_latents(nets, z)
            if interp is not None:
                imgs = reinterpolate(imgs, n_ctx, interp)
            out[idx[n_ctx] : idx[-1] + 1] = imgs[n_ctx:]
    finally:
        va.restore(nets.unet, before[0])
        if nets.controlnet is not None and before[1] is not None:
            va.restore(nets.controlnet, before[1])
    if interp is not None and len(out) > 2:
        progress("smoothing", 0)
        out = smooth(out, interp)
    return out


def _install_store(unet, store: CrossAttnMaps) -> dict:
    before = dict(unet.attn_processors)
    hooked = set(mask_layers(before))
    procs = {n: (store.processor() if n in hooked else proc) for n, proc in before.items()}
    unet.set_attn_processor(procs)
    return before
