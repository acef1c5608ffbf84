"""LOVECon against references written from the official algorithm (zhijie-group/LOVECon:
``get_attention_mask`` / ``aggregate_attention`` in ``prompt_attention/visualization.py``,
``latents_fusion`` in ``p2p_ddim_spatial_temporal_controlnet.py``, ``DDIMInterpolationScheduler
.step`` and the smoother of ``p2p_validation_loop_controlnet.py``, and the configs in
``test_config/``), not from our code. Small tensors, no model except the tiny tokenizer."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.video.fusion import CrossAttnMaps, fuse, mask_layers
from engine.video.interpolate import reinterpolate, smooth
from engine.video.lovecon import default_edit_phrase
from engine.video_protocol import LoveconFusion

P = LoveconFusion()


# ---- references, from the official code's steps ------------------------------------------


def official_fusion(i, editing_type, latents, source_latents, mask):
    """latents_fusion of the official pipeline (50 steps)."""
    if editing_type == "attribute":
        if i < 30:
            latents = latents * 0.97 + source_latents * 0.03
        if i < 40:
            latents = latents * mask + source_latents * (1 - mask)
    elif editing_type == "background":
        if i < 20:
            latents = latents * (1 - mask) + source_latents * mask
    elif editing_type == "style" and i < 20:
        latents = latents * 0.95 + source_latents * 0.05
    return latents


def official_mask(store, prompt_ids, phrase_ids, res=16, latent=64):
    """get_attention_mask: ``store`` is a list over steps of {place: [per-layer maps (frames,
    heads, res², tokens)]}. Average over steps; cross maps of "down" and "up" at ``res`` only,
    concatenated over heads of every layer and averaged; then for every prompt token whose id
    is one of the phrase's, per frame: 255·map/max, < 100 → 0 else 1, 3×3 dilation, PIL resize
    to latent×latent; the union (max) over those tokens. Returns (mask (F, latent, latent),
    the union before resizing (F, res, res))."""
    steps = len(store)
    chosen = []
    for place in ("down", "up"):
        for layer in range(len(store[0][place])):
            item = sum(step[place][layer] for step in store) / steps
            if item.shape[2] == res * res:
                f, h, _, t = item.shape
                chosen.append(item.reshape(f, h, res, res, t))
    maps = torch.cat(chosen, dim=1)
    maps = maps.sum(1) / maps.shape[1]  # (F, res, res, tokens)
    masks, smalls = [], []
    for j in range(maps.shape[0]):
        images, small = [], []
        for i in range(len(prompt_ids)):
            if prompt_ids[i] in phrase_ids:
                image = 255 * maps[j, :, :, i] / maps[j, :, :, i].max()
                image = torch.where(image < 100, torch.tensor(0), torch.tensor(1))
                padded = torch.nn.functional.pad(image[None, None].float(), (1, 1, 1, 1))
                image = padded.unfold(2, 3, 1).unfold(3, 3, 1).amax((-1, -2))[0, 0]  # dilation
                small.append(image)
                up = Image.fromarray(image.numpy().astype(np.uint8)).resize((latent, latent))
                images.append(torch.from_numpy(np.array(up)))
        masks.append(torch.stack(images).amax(0))
        smalls.append(torch.stack(small).amax(0))
    return torch.stack(masks), torch.stack(smalls)


def official_window_reinterpolation(frames, interp):
    """DDIMInterpolationScheduler.step: window frames [first, previous window's last, new…];
    for i in 1 … f−3: images[i+1] = interp(images[i], images[i+2]), in place."""
    images = [f.copy() for f in frames]
    for i in range(1, len(images) - 2):
        images[i + 1] = interp(images[i], images[i + 2])
    return np.stack(images)


def official_smoother(frames, interp):
    """The validation loop's smoother: frames in [0, 1] floats, in place, in order:
    frames[i+1] = (frames[i+1] + interp(frames[i], frames[i+2])) / 2."""
    frames = frames.astype(np.float64) / 255
    for i in range(len(frames) - 2):
        frames[i + 1] = (frames[i + 1] + interp(frames[i], frames[i + 2])) / 2
    return frames * 255


# ---- background edits: the phrase names what is kept -------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        # test_config/background/cows.yaml and mountain.yaml: the phrase is the object kept
        ("cows walking on the grass", "cows walking on the snowfield", "cows"),
        ("A man on the sand facing a mountain", "A man on the grassland facing a mountain", "man"),
    ],
)
def test_background_default_phrase_names_the_object_kept(config):
    source, target, official_phrase = config
    phrase = default_edit_phrase(source, target, "background").split()
    assert official_phrase.lower() in phrase
    # and never the background words that change (masking them would restore them)
    changed = set(source.lower().split()) - set(target.lower().split())
    assert not changed & set(phrase)


def test_attribute_default_phrase_unchanged():
    assert default_edit_phrase("A woman with a white hat", "A woman with a pink hat") == "white"


def test_background_fusion_keeps_the_masked_object_and_changes_the_rest():
    g = torch.Generator().manual_seed(0)
    z, z_src = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    mask = torch.zeros(2, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1  # the object ("cows")
    for kind in ("attribute", "background", "style"):
        for i in (0, 19, 20, 29, 30, 39, 40, 49):
            ours = fuse(z, z_src, mask, i, 50, kind, P)
            assert torch.allclose(ours, official_fusion(i, kind, z, z_src, mask)), (kind, i)
    early = fuse(z, z_src, mask, 0, 50, "background", P)
    assert torch.equal(early[..., 2:6, 2:6], z_src[..., 2:6, 2:6])  # the object: the source's
    assert torch.equal(early[..., 0, :], z[..., 0, :])  # the background: the edit's


def test_mask_tokens_match_the_official_token_rule():
    """Every prompt token whose id the phrase holds (official: ``tokens[i] in
    edit_phrase_tokens``) — for a multi-token phrase and a repeated word."""
    from transformers import CLIPTokenizer

    from engine.models.registry import RESOURCES
    from engine.video.denoise import token_indices

    tok = CLIPTokenizer.from_pretrained(Path(RESOURCES / "models" / "sfumato-tiny" / "tokenizer"))
    for prompt, phrase in [
        ("cows walking on the grass", "cows"),
        ("a red car next to a red barn", "red car"),
        ("t-rex, twemoji style, on a green background", "t-rex"),
    ]:
        ids = tok.encode(prompt)
        phrase_ids = tok.encode(phrase)[1:-1]
        official = [i for i in range(len(ids)) if ids[i] in phrase_ids]
        assert token_indices(tok, prompt, phrase) == official, (prompt, phrase)


# ---- the mask: 16×16 only, union of per-token masks ---------------------------------------


def _attention_store(frames=2, heads=2, tokens=6, steps=3, seed=0):
    """Softmax attention at 64², 32², 16² (down and up) and 8² (mid), with blobs placed so that
    the resolutions and the tokens disagree: token 2 strong at the top left at 16², token 4 weak
    at the bottom right at 16², and at 64²/32² token 2 at the bottom left instead."""
    g = torch.Generator().manual_seed(seed)

    def layer(res):
        logits = torch.randn(frames, heads, res, res, tokens, generator=g)
        a = res // 8
        if res == 16:
            logits[:, :, 2:5, 2:5, 2] += 6.0
            logits[:, :, 11:13, 11:13, 4] += 3.0
            logits[:, :, 11:13, 11:13, 2] -= 4.0  # token 2 absent where token 4 is
        elif res in (32, 64):
            logits[:, :, 12 * a : 15 * a, 1 * a : 4 * a, 2] += 8.0
        return logits.softmax(-1).reshape(frames, heads, res * res, tokens)

    store = []
    for _ in range(steps):
        store.append(
            {
                "down": [layer(64), layer(32), layer(16)],
                "mid": [layer(8)],
                "up": [layer(16), layer(32), layer(64)],
            }
        )
    return store


def _ours(store, tokens, threshold=P.mask_threshold):
    maps = CrossAttnMaps(None, tokens, (64, 64))
    for step in store:
        for place in ("down", "up"):  # the mid block gets no store processor (mask_layers)
            for item in step[place]:
                f, h, n, t = item.shape
                maps.add(item.reshape(f * h, n, t), f)
    return maps.mask(threshold)


def test_mask_is_the_official_16x16_union_of_token_masks():
    store = _attention_store()
    prompt_ids = [49406, 10, 11, 12, 13, 49407]  # token ids; positions 2 and 4 are the phrase
    phrase_ids = [11, 13]
    ref, ref_small = official_mask(store, prompt_ids, phrase_ids)
    ours = _ours(store, [2, 4])
    assert ours.shape == (2, 1, 64, 64)
    # at the mask resolution the two agree exactly (nearest upsampling: every 4th pixel)
    assert torch.equal(ours[:, 0, ::4, ::4], ref_small.float())
    # the weak token's region is in the union (an average of tokens would have dropped it) …
    assert ref_small[:, 11, 11].all() and ref_small[:, 3, 3].all()
    # … and the finer levels' blob (bottom left) is not in it
    assert not ref_small[:, 13, 2].any()
    # upsampled: the official's PIL (bicubic, rounded) and our nearest differ only at corners
    agree = (ours[:, 0] == ref.float()).float().mean()
    assert agree > 0.99, float(agree)


def test_the_old_rules_would_differ_so_the_test_can_fail():
    """Averaging 64/32/16 (and thresholding the token average) gives another mask."""
    store = _attention_store()
    _, ref_small = official_mask(store, [49406, 10, 11, 12, 13, 49407], [11, 13])
    pooled = []
    for step in store:
        for place in ("down", "up"):
            for item in step[place]:
                f, _, n, _ = item.shape
                r = int(n**0.5)
                m = item[..., [2, 4]].mean(-1).mean(1).reshape(f, 1, r, r)
                pooled.append(torch.nn.functional.adaptive_avg_pool2d(m, 16))
    avg = torch.stack(pooled).mean(0)
    avg = avg / avg.flatten(1).amax(1)[:, None, None, None]
    old = torch.nn.functional.max_pool2d((avg >= 0.39).float(), 3, 1, 1)[:, 0]
    assert not torch.equal(old, ref_small.float())


def test_mask_layers_are_the_down_and_up_cross_attentions():
    from diffusers import UNet2DConditionModel

    from engine.models.registry import RESOURCES

    unet = UNet2DConditionModel.from_pretrained(RESOURCES / "models" / "sfumato-tiny" / "unet")
    names = list(unet.attn_processors)
    chosen = mask_layers(names)
    expected = [n for n in names if ".attn2." in n and not n.startswith("mid_block")]
    assert chosen == expected and chosen
    assert not [n for n in chosen if "attn1" in n or n.startswith("mid_block")]


# ---- smoothing: in order, seam included ---------------------------------------------------


def _nonlinear_mid(a, b):
    """A stand-in interpolator whose result depends on both inputs non-trivially."""
    x = (a.astype(np.float64) * 0.7 + b.astype(np.float64) * 0.3 + 13) % 256
    return x.astype(np.uint8) if a.dtype == np.uint8 else x


@pytest.mark.parametrize("n_new", [1, 2, 3, 8])
def test_last_step_reinterpolation_is_the_official_sequence(n_new):
    rng = np.random.default_rng(n_new)
    window = rng.integers(0, 256, (2 + n_new, 4, 5, 3), dtype=np.uint8)  # 2 context frames
    ours = reinterpolate(window, 2, _nonlinear_mid)
    assert np.array_equal(ours, official_window_reinterpolation(window, _nonlinear_mid))
    assert np.array_equal(ours[-1], window[-1])  # the window's last frame is kept
    if n_new >= 2:
        # the first new frame comes from the seam: change the previous window's last frame …
        other = window.copy()
        other[1] = 255 - other[1]
        assert not np.array_equal(reinterpolate(other, 2, _nonlinear_mid)[2], ours[2])
        # … and every inner new frame is replaced, not only the odd ones
        assert all(not np.array_equal(ours[j], window[j]) for j in range(2, len(window) - 1))


def test_final_smoothing_is_sequential():
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (7, 4, 5, 3), dtype=np.uint8)

    def mid(a, b):
        return (
            (a.astype(np.float64) + b) / 2
            if a.dtype != np.uint8
            else np.clip(((a.astype(np.float64) + b) / 2).round(), 0, 255).astype(np.uint8)
        )

    ours = smooth(frames, mid).astype(np.float64)
    ref = official_smoother(frames, lambda a, b: (a + b) / 2)
    assert np.abs(ours - ref).max() <= 1.5  # our frames are rounded to uint8 between steps
    parallel = frames.astype(np.float64).copy()
    parallel[1:-1] = (frames[1:-1] + (frames[:-2].astype(np.float64) + frames[2:]) / 2) / 2
    assert np.abs(parallel - ref).max() > 5  # the parallel version is another result


def test_edit_reinterpolates_every_window_with_its_seam_and_smooths_all(monkeypatch):
    """A real LOVECon edit on the embedded model: the last-step re-interpolation sees each
    decoded window with its two context frames, and the final smoothing every frame."""
    from engine.video import lovecon
    from engine.video.control import canny_maps
    from engine.video.sample_clip import sample_caption, sample_frames
    from engine.video_protocol import VideoEditParams
    from tests.support.tiny_video import embedded_video_nets

    torch.set_num_threads(1)
    nets = embedded_video_nets()
    calls, seen = [], []

    def interp(a, b):
        calls.append(1)
        return a

    real = lovecon.reinterpolate

    def spy(frames, first, fn):
        seen.append((len(frames), first))
        return real(frames, first, fn)

    monkeypatch.setattr(lovecon, "reinterpolate", spy)
    monkeypatch.setattr(lovecon, "make_interpolator", lambda *a, **k: interp)
    frames = sample_frames(7)
    src = sample_caption()
    p = VideoEditParams(
        source="x",
        source_prompt=src,
        target_prompt=src.replace("white", "green"),
        edit_type="background",
        steps=2,
        window=3,
        width=64,
        height=64,
    )
    out = lovecon.edit(nets, frames, canny_maps(frames), p, lambda _s, _n: None)
    assert out.shape == frames.shape
    assert seen == [(5, 2), (5, 2), (3, 2)]  # windows of 3 new frames, 2 context frames each
    assert len(calls) == 2 + 2 + 0 + 5  # positions 2…f−2 of each window, then 5 inner frames
