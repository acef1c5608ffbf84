"""An annotator folder in the lllyasviel/Annotators layout with randomly initialised weights of
the real networks (controlnet_aux's own classes), for HED / depth / pose control-map tests.

Same file names and state-dict keys as the published files, so the engine's real loading code
runs on them; no download. Sizes: ControlNetHED.pth 59 MB, body_pose_model.pth 209 MB,
dpt_hybrid-midas-501f0c75.pt ~490 MB (only written where MiDaS can be built: it needs timm and
a torchvision that matches torch).
"""

from __future__ import annotations

from pathlib import Path


def depth_available() -> bool:
    """Whether controlnet_aux's MiDaS (timm + torchvision) imports in this environment."""
    from engine.video.annotators import _aux

    try:
        _aux("midas")
    except (ImportError, RuntimeError):  # RuntimeError: a torchvision built for another torch
        return False
    return True


def write_annotator_folder(folder: Path, seed: int = 0, kinds=("hed", "pose", "depth")) -> Path:
    import torch

    from engine.video.annotators import WEIGHTS, _aux

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if "hed" in kinds:
        torch.save(_aux("hed").ControlNetHED_Apache2().state_dict(), folder / WEIGHTS["hed"])
    if "pose" in kinds:
        model = _aux("open_pose.body").bodypose_model()
        # the published file's keys lack the first component ("model0.conv1_1.weight" is
        # saved as "conv1_1.weight"); controlnet_aux's util.transfer maps them back
        state = {k.split(".", 1)[1]: v for k, v in model.state_dict().items()}
        torch.save(state, folder / WEIGHTS["pose"])
    if "depth" in kinds and depth_available():
        dpt = _aux("midas.midas.dpt_depth")
        model = dpt.DPTDepthModel(path=None, backbone="vitb_rn50_384", non_negative=True)
        torch.save(model.state_dict(), folder / WEIGHTS["depth"])
    return folder
