"""The cache of per-model fits: Analytic-DPM's Γ_t (and optimal trajectories) and the calibration means.

Fits are keyed by the model weights' SHA-256 (so a renamed or moved model keeps its fits and a
retrained one does not inherit stale ones) and stored under ``<data>/fits/<hash>/`` as a JSON
:class:`FitInfo` plus a safetensors file of the numbers. Hashing a multi-GB checkpoint takes
seconds, so hashes are remembered per (path, size, mtime).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from pathlib import Path

from engine.protocol import FitInfo, ModelInfo

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")


def _weight_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(f for f in path.rglob("*") if f.is_file() and f.suffix in _WEIGHT_SUFFIXES)


class FitStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._memo_path = root / "hashes.json"

    # ------------------------------------------------------------------ model identity

    def model_hash(self, info: ModelInfo) -> str:
        """SHA-256 over the model's weight files (names and bytes), memoised per file state."""
        path = Path(info.path)
        files = _weight_files(path)
        state = [
            [
                str(f.relative_to(path) if path.is_dir() else f.name),
                f.stat().st_size,
                f.stat().st_mtime_ns,
            ]
            for f in files
        ]
        key = str(path.resolve())
        with self._lock:
            memo = self._read_memo()
            hit = memo.get(key)
            if hit and hit["state"] == state:
                return hit["hash"]
        h = hashlib.sha256()
        for f, (name, _size, _mtime) in zip(files, state, strict=True):
            h.update(name.encode() + b"\0")
            with open(f, "rb") as fh:
                while chunk := fh.read(1 << 22):
                    h.update(chunk)
        digest = h.hexdigest()
        with self._lock:
            memo = self._read_memo()
            memo[key] = {"state": state, "hash": digest}
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self._memo_path.with_suffix(".part")
            tmp.write_text(json.dumps(memo))
            tmp.replace(self._memo_path)
        return digest

    def _read_memo(self) -> dict:
        try:
            return json.loads(self._memo_path.read_text())
        except (OSError, ValueError):
            return {}

    # ------------------------------------------------------------------ fits

    def save(self, info: FitInfo, tensors: dict) -> FitInfo:
        from safetensors.torch import save_file

        folder = self.root / info.model_hash
        folder.mkdir(parents=True, exist_ok=True)
        info = info.model_copy(update={"id": info.id or secrets.token_hex(6)})
        stem = folder / f"{info.kind}-{info.id}"
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(stem) + ".safetensors")
        tmp = Path(str(stem) + ".json.part")
        tmp.write_text(info.model_dump_json(indent=1))
        tmp.replace(str(stem) + ".json")  # the JSON last: a fit is listed only when complete
        return info

    def list(self, model_hash: str, kind: str | None = None) -> list[FitInfo]:
        """Fits of a model, newest first."""
        folder = self.root / model_hash
        fits = []
        for f in folder.glob("*.json") if folder.is_dir() else []:
            try:
                fit = FitInfo.model_validate_json(f.read_text())
            except ValueError:
                continue
            if kind is None or fit.kind == kind:
                fits.append(fit)
        return sorted(fits, key=lambda x: x.created_at, reverse=True)

    def tensors(self, fit: FitInfo) -> dict:
        from safetensors.torch import load_file

        return load_file(str(self.root / fit.model_hash / f"{fit.kind}-{fit.id}.safetensors"))

    def gammas(self, model_hash: str) -> tuple[dict[int, float], float | None]:
        """Γ_t from every analytic fit of the model (newer fits win) and the data range."""
        out: dict[int, float] = {}
        data_range = None
        for fit in reversed(self.list(model_hash, "analytic")):
            t = self.tensors(fit)
            out.update({int(k): float(v) for k, v in zip(t["timesteps"], t["gamma"], strict=True)})
            if "data_range" in t:
                data_range = float(t["data_range"])
        return out, data_range

    def trajectories(self, model_hash: str) -> dict[int, list[int]]:
        """Analytic-DPM's optimal trajectories cached with the model's analytic fits, per step
        count (newer fits win)."""
        out: dict[int, list[int]] = {}
        for fit in reversed(self.list(model_hash, "analytic")):
            for name, value in self.tensors(fit).items():
                if name.startswith("optimal_"):
                    out[int(name.removeprefix("optimal_"))] = [int(t) for t in value]
        return out

    def calibration(self, model_hash: str, mode: str = "spatial"):
        """The newest calibration table of the model, or None; ``mode`` picks its spatial or
        per-channel mean (a fit made before the spatial mean was kept has only the latter)."""
        from engine.calibration import CalibrationTable

        fits = self.list(model_hash, "calibration")
        if not fits:
            return None
        t = self.tensors(fits[0])
        return CalibrationTable(
            t["timesteps"],
            t["mean_cond"],
            t["mean_uncond"],
            t.get("spatial_cond"),
            t.get("spatial_uncond"),
            mode,
        )
