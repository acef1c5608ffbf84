"""The packaged app: build it with PyInstaller here, start the executable offscreen with an
engine from this checkout's Python, see it connect and exit cleanly. Slow (about a minute of
building on two cores); needs the ``package`` extra (PyInstaller)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("sfumato_build", ROOT / "packaging" / "build.py")
packaging_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(packaging_build)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
#: The bundle is Qt + Python + numpy/Pillow/aiohttp/pydantic, about 250 MiB on Linux. A bundle
#: far above this has let an engine-side library in (torch alone is > 700 MiB).
MAX_BUNDLE_MIB = 400


@pytest.fixture
def sfumato_png(tmp_path: Path) -> Path:
    """A PNG with a Sfumato recipe, as the engine writes them."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from engine.protocol import GenerateParams, recipe_json

    params = GenerateParams(prompt="a quiet harbour", width=64, height=64, steps=8, seed=777)
    info = PngInfo()
    info.add_text("parameters", params.to_a1111(seed=777))
    info.add_text("sfumato", recipe_json(params, seed=777, model_name="tiny", index=0))
    path = tmp_path / "harbour.png"
    Image.new("RGB", (64, 64), (10, 20, 30)).save(path, pnginfo=info)
    return path


@pytest.fixture(scope="module")
def built_app(tmp_path_factory) -> Path:
    pytest.importorskip("PyInstaller", reason="pip install -e .[package]")
    out = tmp_path_factory.mktemp("frozen")
    return packaging_build.build(out / "dist", out / "work")


def test_bundle_has_no_torch_and_a_sane_size(built_app: Path):
    bundle = built_app.parent
    assert packaging_build.forbidden_in(bundle) == []
    size_mib = packaging_build.folder_size(bundle) / 2**20
    assert 30 < size_mib < MAX_BUNDLE_MIB, size_mib
    assert (bundle / "_internal" / "app" / "style.qss").is_file()
    assert (bundle / "_internal" / "resources" / "icons" / "sfumato.svg").is_file()


def test_frozen_app_starts_connects_to_an_engine_and_exits(
    built_app: Path, tmp_path: Path, sfumato_png: Path
):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFUMATO_")}
    env.update(QT_QPA_PLATFORM="offscreen", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [
            str(built_app),
            "--data-dir",
            str(tmp_path / "data"),
            "--engine-python",
            sys.executable,
            "--smoke-test",
            "240",
            "--log-level",
            "INFO",
            str(sfumato_png),
        ],  # as a desktop passes a double-clicked file
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "SFUMATO_SMOKE_OK http://127.0.0.1:" in proc.stdout
    assert "window shown after" in proc.stderr
    logs = tmp_path / "data" / "logs"
    assert "window shown after" in (logs / "sfumato.log").read_text()
    assert "SFUMATO_ENGINE_READY" in (logs / "engine-console.log").read_text()
    # the PNG it was given was opened: its settings restored, and it is a recent file now
    assert str(sfumato_png.resolve()) in (tmp_path / "data" / "settings.ini").read_text()


def test_desktop_entry_script(built_app: Path, tmp_path: Path):
    script = built_app.parent / "install-desktop-entry.sh"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "share"),
    }
    subprocess.run(["sh", str(script)], check=True, env=env, capture_output=True, timeout=60)
    entry = (tmp_path / "share" / "applications" / "sfumato.desktop").read_text()
    assert f'Exec="{built_app}" %F' in entry and "Icon=sfumato" in entry
    icons = tmp_path / "share" / "icons" / "hicolor"
    assert (icons / "scalable" / "apps" / "sfumato.svg").is_file()
    assert (icons / "256x256" / "apps" / "sfumato.png").is_file()


def test_frozen_app_without_an_engine_python_fails_with_the_reason(built_app: Path, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFUMATO_")}
    env.update(QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [str(built_app), "--data-dir", str(tmp_path / "data"), "--smoke-test", "60"],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "SFUMATO_SMOKE_FAILED No engine is running. This packaged Sfumato" in proc.stdout
