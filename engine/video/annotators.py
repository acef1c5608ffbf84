"""HED, depth and pose annotators for control maps, built from weights on disk.

The folder is laid out like ``lllyasviel/Annotators`` (what ``controlnet_aux`` detectors read):
``ControlNetHED.pth`` (HED), ``dpt_hybrid-midas-501f0c75.pt`` (MiDaS DPT-hybrid depth),
``body_pose_model.pth`` (OpenPose body). HED and pose are controlnet_aux's own networks and
pre- and post-processing; depth is transformers' DPT-hybrid with the MiDaS file's tensors
renamed (controlnet_aux's MiDaS needs timm and torchvision), processed as controlnet_aux does.
We load the files ourselves, so nothing reaches for the Hugging Face hub or pretrained
downloads. Loaded annotators are cached per (kind, weights file, device) so the Video panel's
previews and the edit share one, and dropped with the model. Each key loads under its own lock
(a slow depth load does not hold up a HED preview); a generation counter, bumped by
:func:`release`, keeps a load that began before the model went (on its old device) out of the
cache.
"""

from __future__ import annotations

import importlib
import importlib.util
import pickle
import sys
import threading
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.errors import EngineError

#: The weights file each annotator reads, as named in lllyasviel/Annotators.
WEIGHTS = {
    "hed": "ControlNetHED.pth",
    "depth": "dpt_hybrid-midas-501f0c75.pt",
    "pose": "body_pose_model.pth",
}
NAMES = {"hed": "HED", "depth": "Depth (MiDaS)", "pose": "Pose (OpenPose)"}
#: Maps are computed with the frame's short side at most this (controlnet_aux's default), then
#: resized to the frame; smaller frames are annotated at their own size.
DETECT_RESOLUTION = 512

Annotator = Callable[[np.ndarray], np.ndarray]
Key = tuple[str, str, str]
_cache: dict[Key, Annotator] = {}
#: Guards _cache, _loading and _generation; held only for dict work, never for a load.
_lock = threading.Lock()
#: One lock per key: two previews of one annotator load it once, other keys load meanwhile.
_loading: dict[Key, threading.Lock] = {}
_generation = 0
_ALIAS = "_sfumato_controlnet_aux"
#: What torch.load and load_state_dict raise on a file that is not the network's weights.
_UNREADABLE = (
    OSError,
    EOFError,
    RuntimeError,
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    pickle.UnpicklingError,
)


def weights_file(kind: str, folder: str | Path, field: str = "control.annotator") -> Path:
    """The weights file of ``kind`` in ``folder``, or an error that names what is missing."""
    name = NAMES[kind]
    root = Path(folder).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise EngineError(
            f"{name} control: the annotator folder {root} {what}. Choose the folder "
            f"that holds {WEIGHTS[kind]} (the lllyasviel/Annotators layout).",
            field,
        )
    path = root / WEIGHTS[kind]
    if not path.is_file():
        raise EngineError(
            f"{name} control: {WEIGHTS[kind]} is not in {root}. Put the "
            f"annotator's weights there (from lllyasviel/Annotators) or choose "
            "the folder that has them.",
            field,
        )
    return path


def generation() -> int:
    """The cache's generation: read it *before* choosing the device, pass it to
    :func:`annotator`; a :func:`release` in between means that device may be stale."""
    with _lock:
        return _generation


def annotator(
    kind: str, folder: str | Path, device: str = "cpu", generation: int | None = None
) -> Annotator:
    """A function (H, W, 3) uint8 RGB → (H, W, 3) uint8 map, loaded once per (kind, folder,
    device). ``generation`` (default: now) is when the caller chose ``device``: if the cache
    has been released since, or is released while this loads, the annotator is returned for
    this one use but not cached."""
    path = weights_file(kind, folder)
    key = (kind, str(path.resolve()), device)
    with _lock:
        gen = _generation if generation is None else generation
        if gen == _generation and key in _cache:
            return _cache[key]
        key_lock = _loading.setdefault(key, threading.Lock())
    with key_lock:
        with _lock:  # loaded by another caller while this one waited
            if gen == _generation and key in _cache:
                return _cache[key]
        run = _build(kind, path, device)
        with _lock:
            if gen == _generation:
                _cache[key] = run
        return run


def release() -> None:
    """Forget every loaded annotator (with the model: their memory goes back with it); loads
    under way finish for their caller but are not cached."""
    global _generation
    with _lock:
        _cache.clear()
        _generation += 1


def cached() -> list[tuple[str, str, str]]:
    """The (kind, weights file, device) of each loaded annotator."""
    with _lock:
        return list(_cache)


def _build(kind: str, path: Path, device: str) -> Annotator:
    try:
        build = {"hed": _hed, "depth": _depth, "pose": _pose}[kind]
        modules = _modules(kind)
    except (
        ImportError,
        RuntimeError,
    ) as exc:  # RuntimeError: a torchvision built for another torch
        raise EngineError(
            f"{NAMES[kind]} maps need controlnet_aux (pip install --no-deps "
            f"controlnet_aux==0.0.10, or 'sfumato[annotators]'); this engine cannot import "
            f"it: {exc}. Use canny, which needs nothing.",
            "control.type",
        ) from None
    try:
        return build(modules, path, device)
    except _UNREADABLE as exc:  # corrupt, truncated, or another network's weights
        raise EngineError(
            f"{NAMES[kind]} control: {path.name} in {path.parent} could not be read as its "
            f"weights ({type(exc).__name__}: {str(exc)[:200]}). Replace it with the file from "
            "lllyasviel/Annotators.",
            "control.annotator",
        ) from None


def _modules(kind: str) -> list[types.ModuleType]:
    if kind == "hed":
        return [_aux("hed")]
    if kind == "depth":
        return [_aux("util")]
    return [_aux("open_pose.util"), _aux("open_pose.body"), _aux("util")]


def _aux(name: str) -> types.ModuleType:
    """controlnet_aux's submodule ``name``, imported without running ``controlnet_aux/
    __init__.py`` (nor ``open_pose/__init__.py``): those import every one of its 18 detectors
    and with them torchvision, timm, scikit-image and mediapipe, which nothing here needs and
    which fail to import where torchvision does not match torch. The package is
    mounted under a private name so a real ``import controlnet_aux`` elsewhere is unaffected."""
    if _ALIAS not in sys.modules:
        spec = importlib.util.find_spec("controlnet_aux")  # finds it without importing it
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("No module named 'controlnet_aux'")
        root = Path(next(iter(spec.submodule_search_locations)))
        for mod_name, folder in ((_ALIAS, root), (f"{_ALIAS}.open_pose", root / "open_pose")):
            mod = types.ModuleType(mod_name)
            mod.__path__ = [str(folder)]
            sys.modules[mod_name] = mod
    if name.startswith("open_pose."):
        # util and body import each other; body's package normally imports util first
        importlib.import_module(f"{_ALIAS}.open_pose.util")
    return importlib.import_module(f"{_ALIAS}.{name}")


def _load_state(path: Path) -> dict:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise TypeError(f"holds a {type(state).__name__}, not a state dict")
    return state


def _resolution(frame: np.ndarray) -> int:
    return min(DETECT_RESOLUTION, min(frame.shape[:2]))


def _hed(modules, path: Path, device: str) -> Annotator:
    (hed,) = modules
    net = hed.ControlNetHED_Apache2()
    net.load_state_dict(_load_state(path))
    detector = hed.HEDdetector(net.float().eval()).to(device)

    def run(frame: np.ndarray) -> np.ndarray:
        res = _resolution(frame)
        return detector(frame, detect_resolution=res, image_resolution=res, output_type="np")

    return run


def _depth(modules, path: Path, device: str) -> Annotator:
    """MiDaS DPT-hybrid as transformers' ``DPTForDepthEstimation`` (its BiT backbone is timm's
    ResNetV2 and needs no timm or torchvision) with the MiDaS file's tensors renamed
    (:mod:`engine.video.midas_keys`); pre- and post-processing as controlnet_aux's
    ``MidasDetector``: RGB / 127.5 − 1 in, relative inverse depth min–max scaled to 0..255."""
    import torch

    from engine.video.midas_keys import dpt_hybrid_config, midas_to_dpt

    (util,) = modules
    from transformers import DPTForDepthEstimation

    model = DPTForDepthEstimation(dpt_hybrid_config())
    model.load_state_dict(midas_to_dpt(_load_state(path)), strict=True)
    model.eval().to(device)
    embeddings = model.dpt.embeddings
    lock = threading.Lock()

    def run(frame: np.ndarray) -> np.ndarray:
        image = util.resize_image(util.HWC3(frame), _resolution(frame))
        x = torch.from_numpy(image).float().to(device).permute(2, 0, 1)[None] / 127.5 - 1.0
        with lock, torch.no_grad():
            # The hybrid embeddings resize their position embeddings to any size (as MiDaS
            # does) but refuse sizes other than the configured one; say the size is this one.
            embeddings.image_size = tuple(x.shape[-2:])
            depth = model(pixel_values=x).predicted_depth[0]
        depth = depth - depth.min()
        depth = depth / depth.max().clamp_min(1e-12)
        out = (depth * 255.0).clamp(0, 255).to(torch.uint8).cpu().numpy()
        return util.HWC3(out)

    return run


def _pose(modules, path: Path, device: str) -> Annotator:
    """OpenPose body only: what ControlNet's openpose model was trained on and controlnet_aux's
    OpenposeDetector draws by default (hands and face off)."""
    import torch

    pose_util, body_mod, util = modules
    body = body_mod.Body.__new__(body_mod.Body)
    body.model = body_mod.bodypose_model()
    body.model.load_state_dict(pose_util.transfer(body.model, _load_state(path)))
    body.model.eval().to(device)

    def run(frame: np.ndarray) -> np.ndarray:
        image = util.resize_image(util.HWC3(frame), _resolution(frame))
        h, w = image.shape[:2]
        with torch.no_grad():
            candidate, subset = body(image[:, :, ::-1].copy())  # OpenPose reads BGR
        canvas = np.zeros((h, w, 3), dtype=np.uint8)
        for found in body.format_body_result(candidate, subset):
            points = [
                None if k is None else k._replace(x=k.x / w, y=k.y / h) for k in found.keypoints
            ]
            canvas = pose_util.draw_bodypose(canvas, points)
        return canvas

    return run
