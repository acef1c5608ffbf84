"""Cross-frame attention processors against references written from the equations."""

import math

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from engine.video.attention import (
    CrossFrameAttnProcessor,
    FrameLayout,
    TemporalAttention,
    cross_window,
    is_deep,
    key_frame,
    per_frame,
    sparse_causal,
)

C, HEADS, N, FRAMES = 8, 2, 5, 6


def _attn():
    torch.manual_seed(0)
    return Attention(query_dim=C, heads=HEADS, dim_head=C // HEADS).eval()


def _reference(attn, x, frames, kv_sets):
    """softmax(Q_f K_S(f)ᵀ/√d) V_S(f) per head, looped over groups and frames."""
    d = C // HEADS
    g = x.shape[0] // frames
    xs = x.view(g, frames, N, C)
    out = torch.empty_like(xs)
    for b in range(g):
        for f in range(frames):
            q = attn.to_q(xs[b, f])
            ctx = torch.cat([xs[b, j] for j in kv_sets(f, frames)])
            k, v = attn.to_k(ctx), attn.to_v(ctx)
            heads = []
            for h in range(HEADS):
                sl = slice(h * d, (h + 1) * d)
                w = torch.softmax(q[:, sl] @ k[:, sl].T / math.sqrt(d), dim=-1)
                heads.append(w @ v[:, sl])
            out[b, f] = attn.to_out[0](torch.cat(heads, -1))
    return out.view_as(x)


@pytest.mark.parametrize("kv", [key_frame, sparse_causal, cross_window, per_frame])
@pytest.mark.parametrize("groups", [1, 2])
def test_cross_frame_matches_reference(kv, groups):
    attn = _attn()
    x = torch.randn(groups * FRAMES, N, C)
    attn.set_processor(CrossFrameAttnProcessor(FrameLayout(FRAMES), kv))
    with torch.no_grad():
        got = attn(x)
        ref = _reference(attn, x, FRAMES, kv)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_kv_sets_are_the_methods():
    assert [key_frame(f, 8) for f in range(3)] == [[0], [0], [0]]
    assert [sparse_causal(f, 8) for f in (0, 1, 5)] == [[0, 0], [0, 0], [0, 4]]
    assert cross_window(4, 10) == [0, 1, 9]


def test_per_frame_equals_diffusers_default():
    attn = _attn()
    x = torch.randn(FRAMES, N, C)
    with torch.no_grad():
        attn.set_processor(AttnProcessor2_0())
        ref = attn(x)
        attn.set_processor(CrossFrameAttnProcessor(FrameLayout(FRAMES), per_frame))
        got = attn(x)
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=1e-6)


def test_key_frame_makes_frame_zero_unchanged_and_others_depend_on_it():
    attn = _attn()
    x = torch.randn(FRAMES, N, C)
    layout = FrameLayout(FRAMES)
    attn.set_processor(CrossFrameAttnProcessor(layout, key_frame))
    with torch.no_grad():
        a = attn(x)
        y = x.clone()
        y[0] += 1.0
        b = attn(y)
    assert not torch.allclose(a[3], b[3])  # frame 3 reads frame 0's keys and values


def test_temporal_attention_starts_as_identity_and_matches_reference():
    attn = _attn()
    layout = FrameLayout(FRAMES)
    temporal = TemporalAttention(attn)
    x = torch.randn(2 * FRAMES, N, C)
    with torch.no_grad():
        attn.set_processor(CrossFrameAttnProcessor(layout, key_frame))
        plain = attn(x)
        attn.set_processor(CrossFrameAttnProcessor(layout, key_frame, temporal))
        torch.testing.assert_close(attn(x), plain)  # zero projection: nothing added
        assert temporal(x, FRAMES).abs().max() == 0
        # with a non-zero projection the branch is attention over frames at each position
        torch.nn.init.eye_(temporal.proj.weight)
        got = temporal(x, FRAMES)
        xs = x.view(2, FRAMES, N, C)
        ref = torch.empty_like(xs)
        d = C // HEADS
        for b in range(2):
            for p in range(N):
                seq = xs[b, :, p]  # (F, C)
                q, k, v = temporal.to_q(seq), temporal.to_k(seq), temporal.to_v(seq)
                heads = [
                    torch.softmax(
                        q[:, h * d : (h + 1) * d] @ k[:, h * d : (h + 1) * d].T / math.sqrt(d), -1
                    )
                    @ v[:, h * d : (h + 1) * d]
                    for h in range(HEADS)
                ]
                ref[b, :, p] = temporal.to_out(torch.cat(heads, -1))
        torch.testing.assert_close(got, ref.view_as(x), atol=1e-5, rtol=1e-5)
    # initialised from attn1's weights
    torch.testing.assert_close(temporal.to_q.weight, attn.to_q.weight)


def test_deep_blocks_follow_sd15_layout():
    names = [
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor",
        "down_blocks.1.attentions.0.transformer_blocks.0.attn1.processor",
        "mid_block.attentions.0.transformer_blocks.0.attn1.processor",
        "up_blocks.2.attentions.1.transformer_blocks.0.attn1.processor",
        "up_blocks.3.attentions.0.transformer_blocks.0.attn1.processor",
    ]
    assert [is_deep(n, 4) for n in names] == [False, True, True, True, False]
