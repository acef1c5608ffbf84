"""What models are on disk: the embedded default, the user's folders and extra paths.

Nothing is fetched from the network. A diffusers folder is a directory with ``model_index.json``;
a single-file checkpoint is a ``.safetensors`` file (``.ckpt`` pickles are listed so the user
learns why they are refused).
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.architecture import FLOW_ARCHITECTURES, Architecture
from engine.errors import NotFound
from engine.local_paths import path_problem
from engine.protocol import ModelInfo, PromptVocabulary

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
EMBEDDED_MODELS = RESOURCES / "models"
DEFAULT_MODEL_ID = "sfumato-tiny"
_CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")


class ModelRegistry:
    """Scans model folders; ids are folder or file names, unique across folders."""

    #: Seconds a scan is reused while no models folder changed (health checks and every
    #: submission resolve models: a scan reads every model's files, ~10 ms, held the engine up
    #: under bursts of requests).
    SCAN_REUSE_S = 2.0

    def __init__(self, folders: list[Path], extra: list[Path] = ()) -> None:
        import threading

        self.folders = [EMBEDDED_MODELS, *folders]
        self.extra = list(extra)
        self._cache: tuple[tuple, float, list[ModelInfo]] | None = None
        self._cache_lock = threading.Lock()

    def scan(self) -> list[ModelInfo]:
        """The models on disk; a scan less than :data:`SCAN_REUSE_S` old is reused as long as
        no models folder has changed (a model added or removed changes its folder's mtime)."""
        import time

        key = tuple(_mtime(f) for f in (*self.folders, *self.extra))
        with self._cache_lock:
            cached = self._cache
        if cached and cached[0] == key and time.monotonic() - cached[1] < self.SCAN_REUSE_S:
            return list(cached[2])
        models = self._scan()
        with self._cache_lock:
            self._cache = (key, time.monotonic(), models)
        return list(models)

    def known(self) -> list[ModelInfo]:
        """The last scan's models, however old, without touching the disk (Health is answered
        on the event loop); scans only if none has run yet."""
        with self._cache_lock:
            cached = self._cache
        return list(cached[2]) if cached else self.scan()

    def _scan(self) -> list[ModelInfo]:
        found: dict[str, ModelInfo] = {}
        candidates = [
            p for folder in self.folders if folder.is_dir() for p in sorted(folder.iterdir())
        ]
        for path in candidates + self.extra:
            info = describe(path, embedded=path.parent == EMBEDDED_MODELS)
            if info is None:
                continue
            base, n = info.id, 2
            while info.id in found:
                info = info.model_copy(update={"id": f"{base}-{n}"})
                n += 1
            found[info.id] = info
        return list(found.values())

    def get(self, model_id: str) -> ModelInfo:
        for info in self.scan():
            if info.id == model_id or info.path == model_id:
                return info
        problem = path_problem(model_id)
        if problem:
            raise NotFound(f"No model {_short(model_id)!r}: as a path, {problem}.", field="model")
        path = Path(model_id).expanduser()
        if path.exists():
            info = describe(path, embedded=False)
            if info is not None:
                return info
            raise NotFound(
                f"{path} is neither a diffusers model folder (with model_index.json) nor a "
                ".safetensors checkpoint",
                field="model",
            )
        known = ", ".join(i.id for i in self.scan()) or "none yet"
        raise NotFound(
            f"No model {_short(model_id)!r} on disk (known: {known}). Put a diffusers folder or a "
            ".safetensors checkpoint into a models folder, or give its full path.",
            field="model",
        )

    def default(self, models: list[ModelInfo] | None = None) -> ModelInfo | None:
        """The model jobs use when they name none, among ``models`` (default: a scan)."""
        models = self.scan() if models is None else models
        for info in models:
            if info.id == DEFAULT_MODEL_ID:
                return info
        return next((i for i in models if i.embedded), models[0] if models else None)


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1


def _short(text: str, keep: int = 80) -> str:
    """``text`` cut for a message (a 10 000-character id would bury the message itself)."""
    return text if len(text) <= keep else f"{text[:keep]}…"


def describe(path: Path, *, embedded: bool) -> ModelInfo | None:
    """A :class:`ModelInfo` for ``path`` if it looks like a model, else None."""
    path = path.expanduser().resolve()
    if path.suffix == ".config" and path.with_suffix(".safetensors").is_file():
        return None  # the configs of a single file beside it (engine/models/flow_checkpoint.py)
    if path.is_dir() and (path / "model_index.json").is_file():
        try:
            index = json.loads((path / "model_index.json").read_text())
        except (OSError, ValueError):
            index = {}
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        return ModelInfo(
            id=path.name,
            name=_title(path.name),
            format="diffusers",
            path=str(path),
            architecture=_architecture(index, path),
            embedded=embedded,
            size_bytes=size,
            native_size=_native_size(path),
            vocabulary=_vocabulary(path),
        )
    if path.is_file() and path.suffix.lower() in _CHECKPOINT_SUFFIXES:
        architecture, problem, note = _checkpoint_architecture(path)
        if architecture == "part":  # ae / clip_l / t5xxl beside a Flux or SD3 file: not a model
            return None
        return ModelInfo(
            id=path.stem,
            name=_title(path.stem),
            format="single_file",
            path=str(path),
            architecture=architecture,
            embedded=embedded,
            size_bytes=path.stat().st_size,
            problem=problem,
            note=note,
            native_size=_single_file_size(path, architecture),
        )
    return None


_FLOW_PIPELINES = {"StableDiffusion3Pipeline": "sd3", "FluxPipeline": "flux"}


def model_family(architecture: str) -> str:
    """'flow' for SD3/Flux, 'diffusion' for the ε/v-prediction UNets (SD 1/2/XL): the
    :class:`~engine.architecture.Architecture`'s family."""
    return Architecture.parse(architecture).family.value


def _architecture(index: dict, path: Path) -> str:
    cls = str(index.get("_class_name", ""))
    if cls in _FLOW_PIPELINES:
        return _FLOW_PIPELINES[cls]
    if "XL" in cls:
        return "sdxl"
    try:
        unet = json.loads((path / "unet" / "config.json").read_text())
        if unet.get("cross_attention_dim") == 1024:
            return "sd2"
    except (OSError, ValueError):
        pass
    return "sd1"


def _native_size(path: Path) -> int:
    """UNet sample size × the VAE's downsampling factor, from the configs on disk."""
    try:
        vae = json.loads((path / "vae" / "config.json").read_text())
        factor = 2 ** (len(vae["block_out_channels"]) - 1)
        if (path / "transformer" / "config.json").is_file():  # SD3/Flux
            config = json.loads((path / "transformer" / "config.json").read_text())
            if "sample_size" not in config:  # Flux's transformer does not say: 1024 px
                return 1024
            return int(config["sample_size"]) * factor
        unet = json.loads((path / "unet" / "config.json").read_text())
        return int(unet["sample_size"]) * factor
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _vocabulary(path: Path) -> PromptVocabulary | None:
    """``vocabulary.json`` in a model folder (engine/training/vocabulary.py writes it); None
    when there is none or it cannot be read (a listing never fails over it)."""
    try:
        return PromptVocabulary.model_validate_json((path / "vocabulary.json").read_text())
    except (OSError, ValueError):
        return None


def _checkpoint_architecture(path: Path) -> tuple[str, str, str]:
    """(architecture, problem, note) from the headers alone: cheap enough to list. SD3/Flux
    files also read the headers of the parts beside them (engine/models/flow_checkpoint.py);
    such a part itself gives the architecture "part"."""
    from engine.errors import ModelLoadError
    from engine.models import flow_checkpoint
    from engine.models.single_file import detect_architecture, read_safetensors_header

    try:
        return detect_architecture(path), "", ""
    except ModelLoadError as exc:
        try:
            tensors, _ = read_safetensors_header(path)
        except ModelLoadError:
            return "unknown", exc.message, ""
        shapes = {k: s for k, (_d, s) in tensors.items()}
        flow = flow_checkpoint.flow_architecture(shapes)
        if not flow:
            if flow_checkpoint.is_flow_part(path):
                return "part", "", ""
            return "unknown", exc.message, ""
        try:
            plan = flow_checkpoint.plan(path)
        except ModelLoadError as flow_exc:
            return flow, flow_exc.message, ""
        except Exception as flow_exc:  # noqa: BLE001 - the listing never fails over a file
            return flow, f"{path.name} could not be read: {flow_exc}", ""
        return flow, plan.problem, plan.note


def _single_file_size(path: Path, architecture: str) -> int:
    """The native size of a single file: its ``<stem>.config/`` says, else its architecture's."""
    sidecar = path.with_name(path.stem + ".config")
    if architecture in FLOW_ARCHITECTURES and sidecar.is_dir():
        return _native_size(sidecar) or Architecture.parse(architecture).native_size
    return Architecture.parse(architecture).native_size


def _title(stem: str) -> str:
    return stem.replace("_", " ").replace("-", " ").strip().capitalize() or stem
