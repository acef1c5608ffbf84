"""Pack a recipe's export into a few parts that travel, and unpack them into a checkout.

The device tool returns at most 8 files of at most 16 MiB each (64 MiB in all); an export is a
few dozen files (the model's folders, the ControlNet, the evaluation classifier, the fit set,
the figures, the logs). ``pack`` writes one tar (uncompressed: safetensors do not compress)
split into parts of at most 15 MiB, plus a manifest with each part's SHA-256; ``unpack`` checks
them and extracts the tree into a repository root (its paths start with ``resources/`` and
``docs/``).

    python -m engine.training.bundle unpack DIR_WITH_PARTS --into /path/to/checkout
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import tarfile
from pathlib import Path

PART_BYTES = 15 * 2**20
MAX_PARTS = 8
MANIFEST = "bundle.json"


def pack(tree: Path, dest: Path, part_bytes: int = PART_BYTES) -> list[Path]:
    """Tar ``tree`` (relative paths) into ``dest/bundle.tar.NN`` parts + ``bundle.json``."""
    tree, dest = Path(tree), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in tree.rglob("*") if p.is_file()):
            tar.add(path, arcname=str(path.relative_to(tree)), recursive=False)
    data = buf.getvalue()
    count = max(1, -(-len(data) // part_bytes))
    if count + 1 > MAX_PARTS:  # + the manifest
        raise ValueError(
            f"the export is {len(data) / 2**20:.1f} MiB: more than {MAX_PARTS - 1} "
            f"parts of {part_bytes / 2**20:.0f} MiB, which the device cannot return"
        )
    parts = []
    for k in range(count):
        part = dest / f"bundle.tar.{k:02d}"
        part.write_bytes(data[k * part_bytes : (k + 1) * part_bytes])
        parts.append(part)
    manifest = {
        "parts": [
            {
                "name": p.name,
                "bytes": p.stat().st_size,
                "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
            }
            for p in parts
        ],
        "bytes": len(data),
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return [*parts, dest / MANIFEST]


def unpack(folder: Path, into: Path) -> list[str]:
    """Check the parts in ``folder`` against its manifest and extract them under ``into``;
    the extracted paths. Refuses a damaged part or a path that leaves ``into``."""
    folder, into = Path(folder), Path(into)
    manifest = json.loads((folder / MANIFEST).read_text())
    chunks = []
    for part in manifest["parts"]:
        data = (folder / part["name"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != part["sha256"]:
            raise ValueError(f"{part['name']} is damaged (SHA-256 differs from {MANIFEST})")
        chunks.append(data)
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r") as tar:
        names = tar.getnames()
        _remove_stale_weights(into, names)
        tar.extractall(into, filter="data")  # "data": no absolute paths, links or '..'
    return names


def _remove_stale_weights(into: Path, names: list[str]) -> None:
    """Delete the weight files of every folder the bundle brings weights for: new weights may
    be sharded differently (``model.safetensors`` vs ``model-00001-of-00002.safetensors`` + an
    index), and a stale file beside them would be loaded instead."""
    folders = {Path(n).parent for n in names if ".safetensors" in Path(n).name}
    for folder in folders:
        target = (into / folder).resolve()
        if into.resolve() not in target.parents or not target.is_dir():
            continue
        for old in target.iterdir():
            if old.is_file() and ".safetensors" in old.name:
                old.unlink()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack", help="tar a tree into parts")
    a.add_argument("tree", type=Path)
    a.add_argument("--dest", type=Path, required=True)
    b = sub.add_parser("unpack", help="extract parts into a checkout")
    b.add_argument("folder", type=Path)
    b.add_argument("--into", type=Path, required=True)
    args = p.parse_args(argv)
    if args.cmd == "pack":
        for path in pack(args.tree, args.dest):
            print(path)
    else:
        for name in unpack(args.folder, args.into):
            print(name)


if __name__ == "__main__":
    main()
