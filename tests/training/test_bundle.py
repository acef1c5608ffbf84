"""The bundle that brings trained weights back from a GPU box: parts within the device's return
limits, checked on unpack, replacing stale weights instead of leaving them beside new ones."""

from __future__ import annotations

import pytest

from engine.training import bundle


def _tree(root, unet_files: dict[str, bytes]):
    unet = root / "resources" / "models" / "m" / "unet"
    unet.mkdir(parents=True)
    for name, data in unet_files.items():
        (unet / name).write_bytes(data)
    (root / "resources" / "models" / "m" / "model_index.json").write_text("{}")
    return root


def test_parts_round_trip_and_replace_stale_weights(tmp_path):
    export = _tree(
        tmp_path / "export",
        {
            "diffusion_pytorch_model-00001-of-00002.safetensors": b"a" * 3000,
            "diffusion_pytorch_model-00002-of-00002.safetensors": b"b" * 100,
            "diffusion_pytorch_model.safetensors.index.json": b"{}",
            "config.json": b"{}",
        },
    )
    parts = bundle.pack(export, tmp_path / "parts", part_bytes=4096)
    assert len(parts) >= 3 and parts[-1].name == bundle.MANIFEST
    assert all(p.stat().st_size <= 4096 for p in parts[:-1])

    checkout = _tree(
        tmp_path / "checkout",
        {"diffusion_pytorch_model.safetensors": b"old", "config.json": b"old"},
    )
    (checkout / "keep.txt").write_text("mine")
    names = bundle.unpack(tmp_path / "parts", checkout)
    unet = checkout / "resources" / "models" / "m" / "unet"
    assert sorted(p.name for p in unet.iterdir()) == [
        "config.json",
        "diffusion_pytorch_model-00001-of-00002.safetensors",
        "diffusion_pytorch_model-00002-of-00002.safetensors",
        "diffusion_pytorch_model.safetensors.index.json",
    ]  # the old single file is gone
    assert (unet / "config.json").read_bytes() == b"{}"
    assert (checkout / "keep.txt").read_text() == "mine"
    assert "resources/models/m/model_index.json" in names


def test_an_export_too_big_for_the_device_is_refused(tmp_path):
    export = _tree(tmp_path / "export", {"w.safetensors": b"x" * 9000})
    with pytest.raises(ValueError, match="cannot return"):
        bundle.pack(export, tmp_path / "parts", part_bytes=1000)
