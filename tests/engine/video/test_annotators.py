"""HED / depth / pose control maps from an annotator folder on disk (random weights of the real
networks in the lllyasviel/Annotators layout): shapes, determinism, caching, and clear errors
for a wrong folder, a missing file and a corrupt one."""

import shutil
import threading

import numpy as np
import pytest

from engine.errors import EngineError
from engine.models.loader import ModelManager
from engine.video import annotators
from engine.video.control import control_maps
from engine.video.io import decode, fit_frames
from engine.video_protocol import ControlSpec, FrameRange
from tests.support.annotators import (
    midas_state_dict,
    write_annotator_folder,
    write_blob_person_pose_weights,
)


@pytest.fixture(autouse=True)
def _one_thread_and_fresh_cache():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    annotators.release()
    yield
    annotators.release()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def frames(sample_clip):
    """3 frames of the sample clip, 48 high × 64 wide (not square, not a multiple of 64)."""
    clip = decode(sample_clip, FrameRange(start=0, end=24, stride=10))
    return fit_frames(clip.frames, 64, 48, "crop")


def _spec(kind, folder):
    return ControlSpec(type=kind, annotator=str(folder))


def test_hed_maps_come_from_the_file_and_are_cached(frames, annotator_dir):
    maps = control_maps(frames, _spec("hed", annotator_dir))
    assert maps.shape == (3, 48, 64, 3) and maps.dtype == np.uint8
    assert (maps[..., 0] == maps[..., 1]).all() and (maps[..., 0] == maps[..., 2]).all()
    assert maps.std() > 1  # the frame shows through, even with random weights
    assert not (maps[0] == maps[2]).all()  # the sprite moved between frames 0 and 20
    assert annotators.cached() == [
        ("hed", str((annotator_dir / "ControlNetHED.pth").resolve()), "cpu")
    ]
    run = annotators.annotator("hed", annotator_dir)
    assert (control_maps(frames, _spec("hed", annotator_dir)) == maps).all()
    assert annotators.annotator("hed", annotator_dir) is run  # loaded once
    # the weights are read from the file: rebuilt after a release, the maps are the same ...
    annotators.release()
    assert (control_maps(frames, _spec("hed", annotator_dir)) == maps).all()


def test_other_weights_give_other_maps(frames, annotator_dir, tmp_path):
    other = write_annotator_folder(tmp_path / "other", seed=1, kinds=("hed",))
    a = control_maps(frames, _spec("hed", annotator_dir))
    b = control_maps(frames, _spec("hed", other))
    assert not (a == b).all()
    assert len(annotators.cached()) == 2


def test_pose_maps(frames, annotator_dir):
    maps = control_maps(frames[:2], _spec("pose", annotator_dir))
    assert maps.shape == (2, 48, 64, 3) and maps.dtype == np.uint8
    assert (control_maps(frames[:2], _spec("pose", annotator_dir)) == maps).all()


def test_pose_draws_the_person_its_weights_see(tmp_path):
    """Hand-made OpenPose weights see every bright blob as every body part, with limbs pointing
    right: two blobs side by side are a person, drawn between them; one blob is nobody."""
    folder = write_blob_person_pose_weights(tmp_path / "pose")
    frames = np.zeros((3, 48, 64, 3), np.uint8)
    frames[0, 20:28, 12:20] = frames[0, 20:28, 44:52] = 255  # two blobs, centres x 16 and 48
    frames[1, 20:28, 12:20] = 255  # one blob
    maps = control_maps(frames, _spec("pose", folder))
    drawn = maps[0].max(axis=-1) > 0
    assert drawn[24, 16] and drawn[24, 32] and drawn[24, 48]  # both keypoints and the limbs
    ys, xs = np.nonzero(drawn)
    assert 14 <= ys.min() and ys.max() <= 34 and 8 <= xs.min() and xs.max() <= 56
    assert len(np.unique(maps[0][drawn], axis=0)) > 1  # OpenPose's limb colours
    assert not maps[1].any() and not maps[2].any()


def test_depth_maps(frames, annotator_dir):
    maps = control_maps(frames[:2], _spec("depth", annotator_dir))
    assert maps.shape == (2, 48, 64, 3) and maps.dtype == np.uint8
    assert maps.std() > 1 and (maps[..., 0] == maps[..., 2]).all()
    assert maps.min() == 0 and maps.max() == 255  # min-max scaled, as controlnet_aux does
    annotators.release()
    assert (control_maps(frames[:2], _spec("depth", annotator_dir)) == maps).all()


def test_midas_names_map_onto_dpt_hybrid():
    """Every tensor of the MiDaS file lands on one of transformers' DPT-hybrid, unchanged;
    timm's fused qkv is split in query, key, value order; the classifier is dropped."""
    import torch
    from transformers import DPTForDepthEstimation

    from engine.video.midas_keys import dpt_hybrid_config, midas_key, midas_to_dpt

    midas = midas_state_dict(seed=3)
    torch.manual_seed(3)
    reference = DPTForDepthEstimation(dpt_hybrid_config()).state_dict()
    mapped = midas_to_dpt(midas)
    assert mapped.keys() == reference.keys()
    assert all(torch.equal(mapped[k], reference[k]) for k in reference)
    qkv = midas["pretrained.model.blocks.5.attn.qkv.weight"]
    assert torch.equal(mapped["dpt.encoder.layer.5.attention.attention.key.weight"], qkv[768:1536])
    assert (
        midas_key("scratch.refinenet4.resConfUnit2.conv1.bias")
        == "neck.fusion_stage.layers.0.residual_layer2.convolution1.bias"
    )
    assert (
        midas_key("pretrained.act_postprocess4.0.project.0.weight")
        == "neck.reassemble_stage.readout_projects.3.0.weight"
    )
    assert midas_key("pretrained.model.head.weight") is None
    with pytest.raises(KeyError, match="not a MiDaS DPT-hybrid tensor"):
        midas_key("pretrained.model.blocks.0.attn.qkv_extra.weight")


def test_wrong_folder_missing_file_and_corrupt_file(frames, annotator_dir, tmp_path):
    def error(kind, folder) -> str:
        with pytest.raises(EngineError) as err:
            control_maps(frames[:1], _spec(kind, folder))
        assert err.value.field in ("control.annotator", "control.type")
        return err.value.message

    assert "does not exist" in error("hed", tmp_path / "nowhere")
    assert "is a file, not a folder" in error("hed", annotator_dir / "ControlNetHED.pth")
    empty = tmp_path / "empty"
    empty.mkdir()
    msg = error("pose", empty)
    assert "body_pose_model.pth is not in" in msg and str(empty) in msg
    assert "dpt_hybrid-midas-501f0c75.pt is not in" in error("depth", empty)
    # HED's weights under the depth name: not DPT-hybrid's tensors
    shutil.copyfile(annotator_dir / "ControlNetHED.pth", empty / "dpt_hybrid-midas-501f0c75.pt")
    msg = error("depth", empty)
    assert "dpt_hybrid-midas-501f0c75.pt" in msg and "could not be read" in msg

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "ControlNetHED.pth").write_bytes(b"\x00not a torch file" * 64)
    assert "ControlNetHED.pth" in (msg := error("hed", broken)) and "could not be read" in msg
    # another network's weights under the HED name
    shutil.copyfile(annotator_dir / "body_pose_model.pth", broken / "ControlNetHED.pth")
    assert "could not be read" in error("hed", broken)
    # a truncated file
    data = (annotator_dir / "ControlNetHED.pth").read_bytes()
    (broken / "ControlNetHED.pth").write_bytes(data[: len(data) // 2])
    assert "could not be read" in error("hed", broken)
    assert annotators.cached() == []  # nothing half-built is kept


def test_annotators_go_with_the_model(frames, annotator_dir):
    control_maps(frames[:1], _spec("hed", annotator_dir))
    models = ModelManager("cpu")
    models.on_unload.append(annotators.release)
    models.current = object()  # a loaded model, as far as unload() is concerned
    models.unload()
    assert annotators.cached() == []


def test_a_release_after_the_device_was_chosen_keeps_the_load_out_of_the_cache(
    frames, annotator_dir
):
    """A preview reads the generation, then the device; the model is unloaded before its
    annotator loads: the maps are drawn, but nothing on the old device stays cached."""
    spec = _spec("hed", annotator_dir)
    before = annotators.generation()
    annotators.release()  # the model goes
    assert annotators.generation() != before
    maps = control_maps(frames[:1], spec, "cpu", before)
    assert maps.shape == frames[:1].shape and maps.std() > 1
    assert annotators.cached() == []
    control_maps(frames[:1], spec, "cpu", annotators.generation())  # a current one is kept
    assert [k[0] for k in annotators.cached()] == ["hed"]


def _gated_build(monkeypatch, slow_kind):
    """``_build`` that, for ``slow_kind``, signals it started and waits for the gate."""
    started, gate = threading.Event(), threading.Event()
    real = annotators._build

    def build(kind, path, device):
        if kind == slow_kind:
            started.set()
            assert gate.wait(60), "the test never opened the gate"
        return real(kind, path, device)

    monkeypatch.setattr(annotators, "_build", build)
    return started, gate


def _in_thread(fn):
    out = {}
    t = threading.Thread(target=lambda: out.update(value=fn()), daemon=True)
    t.start()
    return t, out


def test_a_slow_load_holds_up_neither_other_kinds_nor_a_release(frames, annotator_dir, monkeypatch):
    started, gate = _gated_build(monkeypatch, "hed")
    slow, slow_out = _in_thread(lambda: annotators.annotator("hed", annotator_dir))
    assert started.wait(30)
    try:
        # another kind loads while the HED load is under way ...
        other, other_out = _in_thread(lambda: annotators.annotator("pose", annotator_dir))
        other.join(30)
        assert not other.is_alive() and callable(other_out["value"])
        # ... and the model can go meanwhile
        rel, _ = _in_thread(annotators.release)
        rel.join(10)
        assert not rel.is_alive()
    finally:
        gate.set()
    slow.join(30)
    assert slow_out["value"](frames[0]).std() > 1  # a working HED for the caller
    # the HED load began before the release: used by its caller, not cached
    assert annotators.cached() == []


def test_one_key_loads_once_for_callers_that_wait_on_it(annotator_dir, monkeypatch):
    started, gate = _gated_build(monkeypatch, "hed")
    first, a = _in_thread(lambda: annotators.annotator("hed", annotator_dir))
    assert started.wait(30)
    second, b = _in_thread(lambda: annotators.annotator("hed", annotator_dir))
    gate.set()
    first.join(30)
    second.join(30)
    assert a["value"] is b["value"] and len(annotators.cached()) == 1
