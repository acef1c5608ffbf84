"""Build the Sfumato GUI as a one-folder app with PyInstaller, then check what went in.

    python packaging/build.py [--dist DIR] [--work DIR] [--clean]

Result: ``<dist>/Sfumato/Sfumato`` (``Sfumato.exe`` on Windows, ``Sfumato.app`` on macOS). The
build fails if an engine-side library (torch, diffusers, …) ended up in the bundle, and prints
the bundle's size. Needs the ``package`` extra: ``pip install -e .[package]``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "packaging" / "sfumato.spec"
NAME = "Sfumato"
#: Top-level names that must not appear in the bundle: the GUI never runs a model.
FORBIDDEN = (
    "torch",
    "diffusers",
    "transformers",
    "safetensors",
    "accelerate",
    "cv2",
    "scipy",
    "uvicorn",
    "fastapi",
)


def executable(dist: Path) -> Path:
    """Path of the built program inside ``dist``."""
    if sys.platform == "darwin":
        return dist / f"{NAME}.app" / "Contents" / "MacOS" / NAME
    return dist / NAME / (f"{NAME}.exe" if sys.platform == "win32" else NAME)


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def forbidden_in(bundle: Path) -> list[str]:
    """Engine-side packages found in the bundle's files or in its archive of Python modules."""
    found = set()
    for path in bundle.rglob("*"):
        top = path.relative_to(bundle).parts
        for part in top:
            name = part.split(".")[0].lower()
            if name in FORBIDDEN or name.startswith("libtorch"):
                found.add(name)
    toc = _pyz_names(bundle)
    found.update(n.split(".")[0] for n in toc if n.split(".")[0] in FORBIDDEN)
    return sorted(found)


def _pyz_names(bundle: Path) -> list[str]:
    """Module names in the PYZ archive inside the executable (via PyInstaller's reader)."""
    try:
        from PyInstaller.archive.readers import CArchiveReader, ZlibArchiveReader
    except ImportError:
        return []
    exe = executable(bundle.parent)
    try:
        carch = CArchiveReader(str(exe))
        for name in carch.toc:
            if name.endswith(".pyz") or name == "PYZ.pyz" or name.startswith("PYZ"):
                data = carch.extract(name)
                tmp = bundle.parent / f".{name}.tmp"
                tmp.write_bytes(data)
                try:
                    return list(ZlibArchiveReader(str(tmp)).toc)
                finally:
                    tmp.unlink()
    except Exception:  # noqa: BLE001 - a reader API change must not fail the build
        return []
    return []


def build(dist: Path, work: Path, clean: bool = False) -> Path:
    """Run PyInstaller on the spec; returns the built executable. Raises on failure."""
    cmd = [
        sys.executable,
        "-m",
        "PyInstaller",
        str(SPEC),
        "--noconfirm",
        "--distpath",
        str(dist),
        "--workpath",
        str(work),
        "--log-level",
        "WARN",
    ]
    if clean:
        cmd.append("--clean")
    subprocess.run(cmd, check=True, cwd=ROOT)
    exe = executable(dist)
    if not exe.exists():
        raise RuntimeError(f"PyInstaller finished but {exe} is missing")
    if sys.platform.startswith("linux"):  # the application-menu entry, next to the program
        script = exe.parent / "install-desktop-entry.sh"
        shutil.copyfile(ROOT / "packaging" / "linux" / "install-desktop-entry.sh", script)
        script.chmod(0o755)
    return exe


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dist", type=Path, default=ROOT / "dist")
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller")
    ap.add_argument("--clean", action="store_true", help="rebuild from scratch")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    exe = build(args.dist.resolve(), args.work.resolve(), args.clean)
    bundle = exe.parent if sys.platform != "darwin" else args.dist.resolve() / f"{NAME}.app"
    size = folder_size(bundle)
    bad = forbidden_in(bundle)
    print(f"built {exe} in {time.perf_counter() - t0:.0f} s; bundle {size / 2**20:.0f} MiB")
    if bad:
        print(f"ERROR: engine-side packages in the GUI bundle: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
