import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    """A models folder holding ``tiny-sd``: random weights in the real SD 1.x layout."""
    from tests.support.tiny_sd import build_tiny_sd

    root = tmp_path_factory.mktemp("models")
    build_tiny_sd(root / "tiny-sd")
    return root
