"""Cross-frame attention for video editing, as diffusers attention processors (no model forks).

The UNet sees a batch of ``G × F`` frames (G = 1, or 2 with classifier-free guidance: the
unconditional frames first). Every processor shares one :class:`FrameLayout` that says F, so it
can regroup ``(G·F, N, C)`` tokens into ``(G, F, N, C)``.

- :class:`CrossFrameAttnProcessor` — self-attention (``attn1``) whose keys and values for frame
  f are the tokens of the frames ``kv_frames(f, F)``; queries stay frame f's own:
    Attn(Q_f, K_S(f), V_S(f)) = softmax(Q_f K_S(f)ᵀ / √d) V_S(f), K_S(f) = [K_j for j in S(f)].
  With S(f) = {0}: ControlVideo's key-frame attention. With S(f) = {0, max(f−1, 0)}: the
  sparse-causal attention LOVECon uses in its ControlNet. With S(f) = {0, 1, F−1}: LOVECon's
  cross-window attention (window positions: the video's first frame, the previous window's end,
  this window's end). With S(f) = {f}: ordinary per-frame attention.
- :class:`TemporalAttention` — ControlVideo's temporal layer: attention across frames at each
  spatial position on the same normed hidden state attn1 reads, initialised from attn1's
  weights, then a zero-initialised C→C projection, added to attn1's output. At initialisation the
  projection is zero, so the block computes exactly what it did without it (identity).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

KvFrames = Callable[[int, int], list[int]]


@dataclass
class FrameLayout:
    """How many frames each UNet call holds (set before every call)."""

    frames: int = 1
    #: Attention slicing: at most this many (frame × group) query rows per SDPA call; 0 = all.
    slice_batch: int = 0


def key_frame(f: int, n: int) -> list[int]:
    """ControlVideo: K, V from the key frame (frame 0) only."""
    return [0]


def sparse_causal(f: int, n: int) -> list[int]:
    """K, V from the first frame and the previous one (frame 0 attends to itself)."""
    return [0, max(f - 1, 0)]


def cross_window(f: int, n: int) -> list[int]:
    """LOVECon: K, V from window positions 0 (first frame), 1 (previous window's end) and n−1
    (this window's end)."""
    return [0, min(1, n - 1), n - 1]


def per_frame(f: int, n: int) -> list[int]:
    return [f]


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def _prologue(attn, hidden_states, temb):
    """Shared pre-processing of diffusers' AttnProcessor2_0 (spatial norm, 4-D input, group
    norm); returns (hidden (B, N, C), restore function)."""
    residual = hidden_states
    if getattr(attn, "spatial_norm", None) is not None:
        hidden_states = attn.spatial_norm(hidden_states, temb)
    shape = None
    if hidden_states.ndim == 4:
        b, c, h, w = hidden_states.shape
        shape = (b, c, h, w)
        hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
    if getattr(attn, "group_norm", None) is not None:
        hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

    def restore(out):
        if shape is not None:
            out = out.transpose(-1, -2).reshape(shape)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor

    return hidden_states, restore


class CrossFrameAttnProcessor(nn.Module):
    """Self-attention across frames (see the module docstring). An ``nn.Module`` so that an
    attached :class:`TemporalAttention` trains and saves with the model."""

    def __init__(
        self,
        layout: FrameLayout,
        kv_frames: KvFrames = key_frame,
        temporal: TemporalAttention | None = None,
    ) -> None:
        super().__init__()
        self.layout = layout
        self.kv_frames = kv_frames
        self.temporal = temporal

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """(G·F, N, C) → (G·F, |S|·N, C): frame f's keys/values are the tokens of S(f)."""
        n = self.layout.frames
        if x.shape[0] % n:
            raise ValueError(f"batch {x.shape[0]} is not a multiple of {n} frames")
        g = x.shape[0] // n
        sets = [self.kv_frames(f, n) for f in range(n)]
        if all(s == [f] for f, s in enumerate(sets)):
            return x
        idx = torch.tensor(sets, device=x.device)  # (F, |S|)
        x = x.view(g, n, *x.shape[1:])[:, idx]  # (G, F, |S|, N, C)
        return x.reshape(g * n, -1, x.shape[-1])

    def __call__(
        self,
        attn,
        hidden_states,
        encoder_hidden_states=None,
        attention_mask=None,
        temb=None,
        *args,
        **kwargs,
    ):
        hidden_states, restore = _prologue(attn, hidden_states, temb)
        normed = hidden_states
        if encoder_hidden_states is not None:  # not self-attention: behave as usual
            context = encoder_hidden_states
            if attn.norm_cross:
                context = attn.norm_encoder_hidden_states(context)
            key, value = attn.to_k(context), attn.to_v(context)
        else:
            key, value = self.gather(attn.to_k(normed)), self.gather(attn.to_v(normed))
        query = attn.to_q(normed)
        step = self.layout.slice_batch or query.shape[0]
        out = torch.cat(
            [
                _attend(attn, query[a : a + step], key[a : a + step], value[a : a + step])
                for a in range(0, query.shape[0], step)
            ]
        )
        out = attn.to_out[1](attn.to_out[0](out))
        if self.temporal is not None and encoder_hidden_states is None:
            out = out + self.temporal(normed, self.layout.frames)
        return restore(out)


def _attend(attn, query, key, value) -> torch.Tensor:
    h = attn.heads
    q, k, v = _heads(query, h), _heads(key, h), _heads(value, h)
    if getattr(attn, "norm_q", None) is not None:
        q = attn.norm_q(q)
    if getattr(attn, "norm_k", None) is not None:
        k = attn.norm_k(k)
    out = F.scaled_dot_product_attention(q, k, v, scale=attn.scale)
    return _merge(out).to(query.dtype)


class TemporalAttention(nn.Module):
    """Attention over frames at each position (ControlVideo), then a zero-initialised C→C
    projection: ``out = P(Attn_t(x))`` with P = 0 at start."""

    def __init__(self, attn) -> None:
        super().__init__()
        c = attn.to_q.in_features
        inner = attn.to_q.out_features
        self.heads = attn.heads
        self.scale = attn.scale
        self.to_q = nn.Linear(c, inner, bias=attn.to_q.bias is not None)
        self.to_k = nn.Linear(c, inner, bias=attn.to_k.bias is not None)
        self.to_v = nn.Linear(c, inner, bias=attn.to_v.bias is not None)
        self.to_out = nn.Linear(inner, attn.to_out[0].out_features)
        with torch.no_grad():
            for mine, theirs in (
                (self.to_q, attn.to_q),
                (self.to_k, attn.to_k),
                (self.to_v, attn.to_v),
                (self.to_out, attn.to_out[0]),
            ):
                mine.weight.copy_(theirs.weight)
                if mine.bias is not None:
                    mine.bias.copy_(theirs.bias)
        self.proj = nn.Linear(attn.to_out[0].out_features, attn.to_out[0].out_features)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.to(device=attn.to_q.weight.device, dtype=attn.to_q.weight.dtype)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        bf, n, c = x.shape
        g = bf // frames
        # (G·F, N, C) → (G·N, F, C): a sequence over frames at each position
        t = x.view(g, frames, n, c).permute(0, 2, 1, 3).reshape(g * n, frames, c)
        q, k, v = (_heads(layer(t), self.heads) for layer in (self.to_q, self.to_k, self.to_v))
        y = _merge(F.scaled_dot_product_attention(q, k, v, scale=self.scale))
        y = self.proj(self.to_out(y))
        return y.view(g, n, frames, -1).permute(0, 2, 1, 3).reshape(bf, n, -1)


# --------------------------------------------------------------------------- installing


def _block_of(name: str) -> tuple[str, int | None]:
    """'down_blocks.1.attentions.0…' → ('down', 1); 'mid_block…' → ('mid', None)."""
    parts = name.split(".")
    if parts[0] == "mid_block":
        return "mid", None
    if parts[0] in ("down_blocks", "up_blocks"):
        return parts[0][:-7], int(parts[1])
    return parts[0], None


def is_deep(name: str, n_up: int) -> bool:
    """LOVECon's deep blocks: everything but the first down and the last up resolution level
    (SD 1.5: down_blocks 1–2, mid, up_blocks 1–2, the 640/1280-channel ones)."""
    kind, i = _block_of(name)
    if kind == "down":
        return i >= 1
    if kind == "up":
        return i <= n_up - 2
    return kind == "mid"


def install(model, choose: Callable[[str], CrossFrameAttnProcessor | None]) -> dict:
    """Give each self-attention (``attn1``) the processor ``choose(name)`` returns (None keeps
    the current one); returns the previous processors for :func:`restore`."""
    before = dict(model.attn_processors)
    procs = {}
    for name, proc in before.items():
        mine = choose(name) if name.endswith("attn1.processor") else None
        procs[name] = mine if mine is not None else proc
    model.set_attn_processor(procs)
    return before


def restore(model, before: dict) -> None:
    model.set_attn_processor(before)


def attn_module(model, processor_name: str):
    """The Attention module a processor name belongs to."""
    return model.get_submodule(processor_name.removesuffix(".processor"))


def install_lovecon(unet, controlnet, layout: FrameLayout) -> tuple[dict, dict | None]:
    """Cross-window attention in the UNet's deep blocks, per-frame in the shallow ones;
    sparse-causal attention in the ControlNet."""
    n_up = len(unet.up_blocks)
    before_u = install(
        unet,
        lambda n: CrossFrameAttnProcessor(layout, cross_window if is_deep(n, n_up) else per_frame),
    )
    before_c = None
    if controlnet is not None:
        before_c = install(controlnet, lambda n: CrossFrameAttnProcessor(layout, sparse_causal))
    return before_u, before_c


def has_temporal(name: str) -> bool:
    """ControlVideo adds temporal attention to the down and up blocks' transformers (SD 1.5:
    down_blocks 0–2, up_blocks 1–3, i.e. every one that has attention), not the mid block."""
    return _block_of(name)[0] in ("down", "up")


def install_controlvideo(
    unet, controlnet, layout: FrameLayout, temporal: bool = True
) -> tuple[dict, dict | None, nn.ModuleDict]:
    """Key-frame attention in every attn1 of the UNet and ControlNet; temporal attention in
    the UNet's down/up transformer blocks. Returns the temporal layers by processor name."""
    layers = nn.ModuleDict()

    def unet_proc(name: str):
        t = None
        if temporal and has_temporal(name):
            t = TemporalAttention(attn_module(unet, name))
            layers[name.replace(".", "__")] = t
        return CrossFrameAttnProcessor(layout, key_frame, t)

    before_u = install(unet, unet_proc)
    before_c = None
    if controlnet is not None:
        before_c = install(controlnet, lambda n: CrossFrameAttnProcessor(layout, key_frame))
    return before_u, before_c, layers
