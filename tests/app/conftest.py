"""Fixtures for the app's tests: offscreen Qt, a qasync loop for async tests, sample PNGs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

A1111_TEXT = (
    "a castle on a hill, golden hour\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 12345, "
    "Size: 512x768, Model hash: abc123, Model: dreamshaper_8"
)


def _qasync_loop():
    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    return qasync.QEventLoop(app)


def pytest_asyncio_loop_factories(config, item):
    """Async tests here run on qasync, like the app: Qt signals and asyncio on one loop."""
    return {"qasync": _qasync_loop}


@pytest.fixture
def a1111_png(tmp_path: Path) -> Path:
    """A PNG as A1111 writes it: a ``parameters`` text chunk only."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", A1111_TEXT)
    path = tmp_path / "a1111.png"
    Image.new("RGB", (16, 24), (200, 120, 40)).save(path, pnginfo=info)
    return path


@pytest.fixture
def sfumato_png(tmp_path: Path) -> Path:
    """A PNG as the engine writes it: A1111 text plus our JSON recipe."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from engine.protocol import GenerateParams, recipe_json

    params = GenerateParams(
        prompt="a quiet harbour",
        width=64,
        height=64,
        steps=8,
        sampler="Euler",
        seed=-1,
        cfg_scale=5.0,
    )
    info = PngInfo()
    info.add_text("parameters", params.to_a1111(seed=777))
    info.add_text("sfumato", recipe_json(params, seed=777, model_name="tiny", index=0))
    path = tmp_path / "sfumato.png"
    Image.new("RGB", (64, 64), (10, 20, 30)).save(path, pnginfo=info)
    return path
