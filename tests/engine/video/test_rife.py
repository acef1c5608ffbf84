"""RIFE 4.6 (engine/video/rife.py): warping, the fusion formula, shapes and range on random
weights, the release's file format loading strictly, and bad files refused with a message."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import EngineError
from engine.video import rife
from engine.video.interpolate import flow_midpoint, make_interpolator, reinterpolate, smooth
from tests.support.rife import write_rife_release


@pytest.fixture(scope="module")
def net() -> rife.IFNet:
    torch.manual_seed(0)
    return rife.IFNet().eval()


def test_zero_flow_warp_is_identity_and_flow_moves_content():
    img = torch.rand(2, 3, 10, 14)
    assert torch.allclose(rife.backward_warp(img, torch.zeros(2, 2, 10, 14)), img, atol=1e-6)
    # out(x) = img(x + f): a flow of (+2, −1) pixels reads two columns right, one row up
    f = torch.zeros(2, 2, 10, 14)
    f[:, 0], f[:, 1] = 2.0, -1.0
    out = rife.backward_warp(img, f)
    assert torch.allclose(out[:, :, 1:, :-2], img[:, :, :-1, 2:], atol=1e-5)
    # outside the frame the border pixels repeat
    assert torch.allclose(out[:, :, 0, :-2], img[:, :, 0, 2:], atol=1e-5)
    assert torch.allclose(out[:, :, 1:, -1], img[:, :, :-1, -1], atol=1e-5)


def test_blend_is_the_papers_fusion_formula():
    """Hand-built: img0 read one pixel right, img1 one pixel left, a mask logit per column."""
    g = torch.Generator().manual_seed(1)
    img0, img1 = torch.rand(1, 3, 6, 8, generator=g), torch.rand(1, 3, 6, 8, generator=g)
    flow = torch.zeros(1, 4, 6, 8)
    flow[:, 0], flow[:, 2] = 1.0, -1.0
    logit = torch.linspace(-3, 3, 8).view(1, 1, 1, 8).expand(1, 1, 6, 8)
    out = rife.blend(img0, img1, flow, logit).numpy()[0]
    a, b = img0.numpy()[0], img1.numpy()[0]
    w0 = np.concatenate([a[:, :, 1:], a[:, :, -1:]], axis=2)  # a(x + 1), border repeated
    w1 = np.concatenate([b[:, :, :1], b[:, :, :-1]], axis=2)  # b(x − 1)
    m = 1 / (1 + np.exp(-np.linspace(-3, 3, 8)))
    assert np.allclose(out, m * w0 + (1 - m) * w1, atol=1e-5)


def test_forward_on_random_weights_shapes_and_range(net):
    torch.manual_seed(2)
    a, b = torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        flow, mask = net.estimate(a, b, 0.5)
        out = net(a, b, 0.5)
    assert flow.shape == (2, 4, 64, 96) and mask.shape == (2, 1, 64, 96)
    assert out.shape == (2, 3, 64, 96) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1 and torch.isfinite(out).all()
    assert flow.abs().max() > 0  # random weights do move things: the output is not a copy


def test_blocks_with_zero_heads_give_the_average_of_both_frames():
    """Zero last convs: every flow and mask logit is 0, so the result is ½·img0 + ½·img1 —
    the whole forward (four blocks, warps, fusion) checked by hand."""
    n = rife.IFNet()
    with torch.no_grad():
        for name, p in n.named_parameters():
            if "lastconv" in name:
                p.zero_()
        a, b = torch.rand(1, 3, 32, 64), torch.rand(1, 3, 32, 64)
        assert torch.allclose(n(a, b), (a + b) / 2, atol=1e-5)


def fixed_weights(net: rife.IFNet) -> dict[str, torch.Tensor]:
    """Weights from a seeded NumPy generator (independent of torch's init), sized so the flows
    come out at a few pixels (mean |flow| 2.4 px, max 13 px on the frames below)."""
    rng = np.random.default_rng(46)
    sd = {}
    for k, v in net.state_dict().items():
        shape = tuple(v.shape)
        if k.endswith("beta"):
            w = np.ones(shape)
        elif len(shape) > 1:
            w = rng.uniform(-1, 1, shape) / np.sqrt(np.prod(shape[1:]))
        else:
            w = rng.uniform(-0.1, 0.1, shape)
        if "lastconv" in k:
            w = w * 3
        sd[k] = torch.tensor(w, dtype=torch.float32)
    return sd


@pytest.mark.parametrize(
    "t, px_a, px_b",
    [
        (0.5, (0.539762, 0.533267, 0.539136), (0.730770, 0.671410, 0.577899)),
        (0.25, (0.617679, 0.446046, 0.616949), (0.664860, 0.633857, 0.559619)),
    ],
)
def test_matches_the_public_reference_on_fixed_weights(t, px_a, px_b):
    """Numbers produced by the public v4.6 IFNet code (Practical-RIFE's warp, vs-rife's
    IFNet_HDv3_v4_6) with these weights and frames; our output matched it bit for bit."""
    n = rife.IFNet().eval()
    n.load_state_dict(fixed_weights(n), strict=True)
    rng = np.random.default_rng(7)
    a = torch.tensor(rng.uniform(0, 1, (1, 3, 64, 96)), dtype=torch.float32)
    b = torch.tensor(rng.uniform(0, 1, (1, 3, 64, 96)), dtype=torch.float32)
    with torch.no_grad():
        out = n(a, b, t)
    assert out[0, :, 10, 20].tolist() == pytest.approx(px_a, abs=1e-4)
    assert out[0, :, 50, 90].tolist() == pytest.approx(px_b, abs=1e-4)
    assert out.std().item() == pytest.approx(0.1529 if t == 0.5 else 0.1531, abs=2e-4)


def test_interpolator_pads_odd_sizes_and_crops_back(net):
    interp = rife.RifeInterpolator(net)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    mid = interp(a, b)
    assert mid.shape == (40, 56, 3) and mid.dtype == np.uint8
    # same frame twice: whatever the flow, a warp of a constant image is that image
    grey = np.full((40, 56, 3), 77, np.uint8)
    assert np.abs(interp(grey, grey).astype(int) - 77).max() <= 1
    # it plugs into LOVECon's smoothing like the built-in one
    frames = np.stack([a, b, a, b])
    assert smooth(frames, interp).shape == frames.shape
    assert reinterpolate(frames, 1, interp).shape == frames.shape


def test_release_format_loads_strictly(net, tmp_path):
    release = tmp_path / "train_log"
    release.mkdir()
    write_rife_release(release / "flownet.pkl", net)
    sd = torch.load(release / "flownet.pkl", weights_only=True)
    assert all(k.startswith("module.block") for k in sd) and len(sd) == 120
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    want = rife.RifeInterpolator(net)(a, b)
    for path in (release / "flownet.pkl", release):  # the file, or the folder holding it
        loaded = rife.load_rife(path)
        for k, v in net.state_dict().items():
            assert torch.equal(loaded.net.state_dict()[k], v), k
        assert np.array_equal(loaded(a, b), want)
    assert np.array_equal(make_interpolator("rife", str(release))(a, b), want)
    assert make_interpolator("flow") is flow_midpoint
    # re-saved without the prefix, or as safetensors, loads too
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp_path / "r.safetensors")
    assert np.array_equal(rife.load_rife(tmp_path / "r.safetensors")(a, b), want)


@pytest.mark.parametrize(
    "edit, words",
    [
        (
            lambda sd: sd.pop("module.block2.convblock.3.beta"),
            ["1 tensors missing", "block2.convblock.3.beta"],
        ),
        (
            lambda sd: sd.__setitem__(
                "module.block0.lastconv.0.weight", torch.zeros(192, 20, 4, 4)
            ),
            ["block0.lastconv.0.weight is (192, 20, 4, 4), expected (192, 24, 4, 4)"],
        ),
        (
            lambda sd: sd.__setitem__("module.encode.0.weight", torch.zeros(16, 3, 3, 3)),
            ["1 unexpected (e.g. encode.0.weight)", "RIFE 4.7 or later"],
        ),
    ],
)
def test_mismatched_state_dicts_are_refused_with_what_differs(net, tmp_path, edit, words):
    path = tmp_path / "flownet.pkl"
    write_rife_release(path, net, edit)
    with pytest.raises(EngineError) as err:
        rife.load_rife(path)
    assert "not a RIFE 4.6 flownet" in err.value.message
    assert err.value.field == "job.params.rife_weights"
    for w in words:
        assert w in err.value.message


def test_missing_empty_corrupt_files_are_refused(net, tmp_path):
    with pytest.raises(EngineError, match="does not exist"):
        rife.load_rife(tmp_path / "nope.pkl")
    with pytest.raises(EngineError, match="needs its weights"):
        rife.load_rife("")
    with pytest.raises(EngineError, match="has no flownet.pkl"):
        rife.load_rife(tmp_path)
    bad = tmp_path / "flownet.pkl"
    bad.write_bytes(b"this is not a pickle")
    with pytest.raises(EngineError, match="Could not read flownet.pkl as RIFE weights"):
        rife.load_rife(bad)
    write_rife_release(bad, net)
    bad.write_bytes(bad.read_bytes()[:5000])  # truncated download
    with pytest.raises(EngineError, match="not corrupted"):
        rife.load_rife(bad)
    torch.save([1, 2, 3], bad)
    with pytest.raises(EngineError, match="does not hold a state dict"):
        rife.load_rife(bad)
    with pytest.raises(EngineError, match="Unknown interpolator"):
        make_interpolator("dain")
