"""LOVECon's fusion schedule and mask; DDIM inversion → sampling reconstructs the source latent
on the embedded model (sfumato-tiny + its canny ControlNet)."""

import numpy as np
import pytest
import torch

from engine.video.fusion import CrossAttnMaps, fuse, scaled
from engine.video.lovecon import default_edit_phrase, windows
from engine.video_protocol import LoveconFusion

P = LoveconFusion()


def _z():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 4, 4, 4, generator=g), torch.randn(2, 4, 4, 4, generator=g)


def test_attribute_schedule():
    z, src = _z()
    m = torch.zeros(2, 1, 4, 4)
    m[..., :2, :] = 1
    early = fuse(z, src, m, 0, 50, "attribute", P)
    blended = 0.97 * z + 0.03 * src
    torch.testing.assert_close(early[..., :2, :], blended[..., :2, :])  # inside the mask
    torch.testing.assert_close(early[..., 2:, :], src[..., 2:, :])  # outside: the source
    mid = fuse(z, src, m, 35, 50, "attribute", P)  # after 30: no blend, mask until 40
    torch.testing.assert_close(mid[..., :2, :], z[..., :2, :])
    torch.testing.assert_close(mid[..., 2:, :], src[..., 2:, :])
    torch.testing.assert_close(fuse(z, src, m, 40, 50, "attribute", P), z)


def test_background_and_style_schedules():
    z, src = _z()
    m = torch.zeros(2, 1, 4, 4)
    m[..., 0, 0] = 1
    bg = fuse(z, src, m, 19, 50, "background", P)
    torch.testing.assert_close(bg[..., 0, 0], src[..., 0, 0])  # the object is kept
    torch.testing.assert_close(bg[..., 1:, :], z[..., 1:, :])  # the background is edited
    torch.testing.assert_close(fuse(z, src, m, 20, 50, "background", P), z)
    torch.testing.assert_close(fuse(z, src, None, 5, 50, "style", P), 0.95 * z + 0.05 * src)
    torch.testing.assert_close(fuse(z, src, None, 20, 50, "style", P), z)


def test_schedule_scales_with_steps():
    assert [scaled(30, s) for s in (50, 25, 10)] == [30, 15, 6]
    z, src = _z()
    m = torch.ones(2, 1, 4, 4)
    # 10 steps: the 0.97/0.03 blend covers steps 0-5
    torch.testing.assert_close(fuse(z, src, m, 5, 10, "attribute", P), 0.97 * z + 0.03 * src)
    torch.testing.assert_close(fuse(z, src, m, 6, 10, "attribute", P), z)


def test_mask_from_attention_maps():
    maps = CrossAttnMaps(None, tokens=[2], latent_hw=(16, 16))
    probs = torch.zeros(1 * 2, 16, 5)  # batch 1, 2 heads, 4×4 queries, 5 tokens
    probs[:, 5, 2] = 1.0  # the phrase's token attends at query (1, 1)
    maps.add(probs, 1)
    mask = maps.mask()
    assert mask.shape == (1, 1, 16, 16)
    # (1,1) dilated by 3×3 → rows/cols 0..2 of the 4×4 map → latent 0..11
    assert mask[0, 0, :12, :12].min() == 1 and mask[0, 0, 12:, :].max() == 0


def test_windows_carry_first_and_previous_frames():
    assert windows(5, 2) == [([0, 0, 0, 1], 2), ([0, 1, 2, 3], 2), ([0, 3, 4], 2)]
    assert default_edit_phrase("a woman with a white hat", "a woman with a pink hat") == "white"
    # a background edit masks the object kept, not the background words that change
    assert (
        default_edit_phrase(
            "cows walking on the grass", "cows walking on the snowfield", "background"
        )
        == "cows walking"
    )


@pytest.fixture(scope="module")
def tiny_nets():
    from tests.support.tiny_video import embedded_video_nets

    torch.set_num_threads(1)
    return embedded_video_nets()


def test_inversion_then_sampling_reconstructs_source(tiny_nets):
    """Relative RMS error of the reconstructed latent: < 12 % at 10 steps, and smaller at 20
    (measured on this model: 9 % at 10, 4.5 % at 25, 2.6 % at 50 steps; docs/video.md)."""
    from engine.video.control import canny_maps
    from engine.video.denoise import (
        control_tensor,
        ddim_grid,
        ddim_invert,
        ddim_sample,
        encode_frames,
        text_embeddings,
    )
    from engine.video.sample_clip import sample_caption, sample_frames

    nets = tiny_nets
    frames = sample_frames(3)
    z0 = encode_frames(nets, frames)
    cond = text_embeddings(nets, sample_caption())
    ctrl = control_tensor(canny_maps(frames), nets)
    errors = []
    for steps in (10, 20):
        grid = ddim_grid(nets, steps)
        zs = ddim_invert(nets, z0, grid, cond, ctrl)
        assert len(zs) == steps + 1 and torch.equal(zs[0], z0)  # every latent kept
        rec = ddim_sample(nets, zs[-1], grid, cond, ctrl)
        errors.append(float((rec - z0).pow(2).mean().sqrt() / z0.pow(2).mean().sqrt()))
    assert errors[0] < 0.12 and errors[1] < errors[0], errors
    # and the inverted end point is noise-like, not the source
    assert float(np.corrcoef(zs[-1].flatten(), z0.flatten())[0, 1]) < 0.9


def test_memory_options_do_not_change_the_edit(tiny_nets):
    """Attention slicing and VAE frame chunks are exact rearrangements of the same work."""
    from engine.video import lovecon
    from engine.video.control import canny_maps
    from engine.video.sample_clip import sample_caption, sample_frames
    from engine.video_protocol import VideoEditParams

    nets = tiny_nets
    frames = sample_frames(3)
    src = sample_caption()
    p = VideoEditParams(
        source="x",
        source_prompt=src,
        target_prompt=src.replace("white", "red"),
        edit_type="attribute",
        edit_phrase="background",
        steps=2,
        window=2,
        width=64,
        height=64,
        cfg_scale=5.0,
    )
    plain = lovecon.edit(nets, frames, canny_maps(frames), p, lambda _s, _n: None)
    nets.layout.slice_batch, nets.frame_chunk = 1, 1
    try:
        sliced = lovecon.edit(nets, frames, canny_maps(frames), p, lambda _s, _n: None)
    finally:
        nets.layout.slice_batch, nets.frame_chunk = 0, 0
    assert plain.shape == sliced.shape == (3, 64, 64, 3)
    assert np.abs(plain.astype(int) - sliced.astype(int)).max() <= 2
    # and the processors were put back: the UNet is plain again
    assert not any(
        type(p).__name__ == "CrossFrameAttnProcessor" for p in nets.unet.attn_processors.values()
    )


def test_controlvideo_tunes_caches_and_restores_the_shared_model(tiny_nets, tmp_path):
    from engine.video import controlvideo
    from engine.video.control import canny_maps
    from engine.video.sample_clip import sample_caption, sample_frames
    from engine.video_protocol import VideoEditParams

    nets = tiny_nets
    before = {k: v.clone() for k, v in nets.unet.state_dict().items()}
    frames = sample_frames(2)
    src = sample_caption()
    p = VideoEditParams(
        source="x",
        source_prompt=src,
        target_prompt=src,
        method="controlvideo",
        steps=2,
        tuning_steps=3,
        learning_rate=1e-3,
        width=64,
        height=64,
    )
    cache = tmp_path / "cv.safetensors"
    out, info = controlvideo.edit(nets, frames, canny_maps(frames), p, lambda _s, _n: None, cache)
    assert out.shape == (2, 64, 64, 3) and len(info["losses"]) == 3 and not info["cached"]
    from safetensors.torch import load_file

    tuned = load_file(str(cache))
    assert any(k.startswith("temporal.") for k in tuned)
    assert any(k.startswith("controlnet.") and k.endswith("to_out.0.weight") for k in tuned)
    after = nets.unet.state_dict()
    assert after.keys() == before.keys()  # no temporal layers left behind
    assert all(torch.equal(before[k], after[k]) for k in before)  # tuned weights put back
    again, info = controlvideo.edit(nets, frames, canny_maps(frames), p, lambda _s, _n: None, cache)
    assert info["cached"] and np.abs(out.astype(int) - again.astype(int)).max() <= 2
