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



def write_blob_person_pose_weights(folder: Path) -> Path:
    """OpenPose body weights made by hand so that it finds a person in a known place.

    Every part's heatmap is the frame's brightness (carried on one channel through the VGG
    trunk, then through stage 6 of the heatmap branch; every other weight is zero) and every
    limb's part-affinity field points right. A dark frame with two bright blobs side by side is
    then a person whose limbs from the neck (part 2) and the nose (part 1) run from the left blob
    to the right one: what the drawing must show, between the blobs, on an otherwise black map.
    """
    import torch

    from engine.video.annotators import WEIGHTS, _aux

    model = _aux("open_pose.body").bodypose_model()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        convs = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}

        def centre(conv, out_ch: int, in_ch: int, w: float) -> None:
            k = conv.kernel_size[0] // 2
            conv.weight[out_ch, in_ch, k, k] = w

        trunk = [n for n in convs if n.startswith("model0.")]
        for c in range(3):  # brightness = mean of B, G, R (the input is x/256 − 0.5)
            centre(convs[trunk[0]], 0, c, 1 / 3)
        for name in trunk[1:]:
            centre(convs[name], 0, 0, 1.0)
        stage6 = [n for n in convs if n.startswith("model6_2.")]
        centre(convs[stage6[0]], 0, 38 + 19, 1.0)  # input: [PAFs 38, heatmaps 19, trunk 128]
        for name in stage6[1:-1]:
            centre(convs[name], 0, 0, 1.0)
        for part in range(18):
            centre(convs[stage6[-1]], part, 0, 4.0)
        paf = convs[[n for n in convs if n.startswith("model6_1.")][-1]]
        paf.bias[0::2] = 1.0  # x components (even channels): pointing right; y: 0
    state = {k.split(".", 1)[1]: v for k, v in model.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / WEIGHTS["pose"])
    return folder
