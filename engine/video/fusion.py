"""LOVECon's edit mask from cross-attention and its latent-fusion schedule.

The mask (the official ``get_attention_mask``): during DDIM inversion the cross-attention
probabilities of each of the edit phrase's tokens are collected from the down and up blocks at
one resolution only (16×16 for a 64×64 latent: a quarter of the latent side) and averaged over
heads, layers and steps; each token's map is normalised by its maximum, thresholded (100/255),
dilated with a 3×3 window and upsampled to the latent size, and the mask is the union of the
tokens' masks.

What the phrase names (the official configs): for an attribute edit the object whose
attribute changes ("hat" in "a woman with a white hat" → "… a pink hat"): the edit is kept
inside the mask; for a background edit the object to *keep* ("cows" in "cows walking on the
grass" → "… on the snowfield"): the source is kept inside the mask and the background outside
it changes.

The fusion (applied after ε is predicted, before the DDIM step, with the inverted latent z_src
of the same timestep; step counts are the paper's for 50 steps, scaled to the job's):
attribute — first 30: z ← 0.97 z + 0.03 z_src; until 40: z ← M z + (1−M) z_src;
background — first 20: z ← (1−M) z + M z_src; style — first 20: z ← 0.95 z + 0.05 z_src.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.video_protocol import LoveconFusion

PAPER_STEPS = 50


def scaled(step_count: int, steps: int) -> int:
    """A step count of the paper's 50-step schedule on a ``steps``-step one."""
    return round(step_count * steps / PAPER_STEPS)


def fuse(
    z: torch.Tensor,
    z_src: torch.Tensor,
    mask: torch.Tensor | None,
    k: int,
    steps: int,
    edit_type: str,
    p: LoveconFusion,
) -> torch.Tensor:
    """The fused latent at sampling step ``k`` (0-based) of ``steps``; ``mask`` (F, 1, h, w)
    is 1 where the edit phrase is (None = everywhere)."""
    m = torch.ones_like(z[:, :1]) if mask is None else mask.to(z)
    if edit_type == "attribute":
        if k < scaled(p.attribute_blend_steps, steps):
            z = (1 - p.attribute_blend) * z + p.attribute_blend * z_src
        if k < scaled(p.attribute_mask_steps, steps):
            z = m * z + (1 - m) * z_src
    elif edit_type == "background":
        if k < scaled(p.background_steps, steps):
            z = (1 - m) * z + m * z_src
    elif edit_type == "style":
        if k < scaled(p.style_steps, steps):
            z = (1 - p.style_blend) * z + p.style_blend * z_src
    else:
        raise ValueError(f"unknown edit type {edit_type!r}")
    return z


def mask_layers(names) -> list[str]:
    """The UNet attention processors whose cross-attention feeds the mask: the ``attn2`` of the
    down and up blocks (the official ``from_where = ["up", "down"]``; the mid block is left
    out)."""
    return [
        n
        for n in names
        if n.endswith("attn2.processor") and n.startswith(("down_blocks.", "up_blocks."))
    ]


class CrossAttnMaps:
    """Collects the edit phrase's cross-attention maps during inversion (an attn2 processor
    per layer of :func:`mask_layers`).

    Only layers at a quarter of the latent side contribute (16×16 for a 64×64 latent, the
    official ``res = 16``); finer and coarser levels are ignored. Each of the phrase's tokens
    keeps its own map, averaged over heads, layers and steps."""

    def __init__(self, frames_layout, tokens: list[int], latent_hw: tuple[int, int]) -> None:
        self.layout = frames_layout
        self.tokens = tokens
        h, w = latent_hw
        self.size = (max(1, h // 4), max(1, w // 4))
        self.latent_hw = latent_hw
        self.total: torch.Tensor | None = None  # (F, T, h/4, w/4), summed
        self.count = 0

    def processor(self):
        return _StoreProcessor(self)

    def add(self, probs: torch.Tensor, batch: int) -> None:
        """probs (batch·heads, Nq, L) of one layer and step: the phrase's tokens' maps, mean
        over heads, added if the layer is at the mask resolution."""
        hq, wq = self.size
        if probs.shape[1] != hq * wq:
            return
        maps = probs[..., self.tokens].float().view(batch, -1, hq, wq, len(self.tokens))
        maps = maps.mean(1).permute(0, 3, 1, 2)  # (F, T, hq, wq)
        self.total = maps if self.total is None else self.total + maps
        self.count += 1

    def mask(self, threshold: float = 100 / 255) -> torch.Tensor | None:
        """(F, 1, h, w) binary mask at the latent size, or None if nothing was collected: per
        token, the map normalised by its maximum, kept where ≥ ``threshold``, dilated 3×3 and
        upsampled (nearest); then the union over the phrase's tokens."""
        if self.total is None or not self.tokens:
            return None
        avg = self.total / self.count
        avg = avg / avg.flatten(2).amax(2).clamp_min(1e-8)[..., None, None]
        m = (avg >= threshold).float()
        m = F.max_pool2d(m, 3, stride=1, padding=1)  # 3×3 dilation, per token
        m = F.interpolate(m, size=self.latent_hw, mode="nearest")
        return m.amax(1, keepdim=True)


class _StoreProcessor:
    def __init__(self, store: CrossAttnMaps) -> None:
        self.store = store

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
        residual = hidden_states
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if attn.norm_cross and encoder_hidden_states is not None:
            context = attn.norm_encoder_hidden_states(context)
        b = hidden_states.shape[0]
        q = attn.head_to_batch_dim(attn.to_q(hidden_states))
        k = attn.head_to_batch_dim(attn.to_k(context))
        v = attn.head_to_batch_dim(attn.to_v(context))
        probs = attn.get_attention_scores(q, k, None)
        if encoder_hidden_states is not None:
            self.store.add(probs.detach(), b)
        out = attn.batch_to_head_dim(torch.bmm(probs, v))
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor
