"""The embedded model (sfumato-tiny) and its canny ControlNet as the video methods' networks,
loaded in-process on the CPU: for the video tests and benches that call LOVECon and
ControlVideo directly."""

from __future__ import annotations

import torch


def embedded_video_nets(dtype: torch.dtype = torch.float32):
    """:class:`engine.video.denoise.VideoNets` of sfumato-tiny with sfumato-tiny-canny in
    ``dtype`` on the CPU (a fresh load each call: callers that reuse them cache them)."""
    from diffusers import StableDiffusionPipeline

    from engine.models.registry import RESOURCES
    from engine.video.denoise import VideoNets, load_controlnet

    pipe = StableDiffusionPipeline.from_pretrained(
        RESOURCES / "models" / "sfumato-tiny", safety_checker=None, torch_dtype=dtype
    )
    controlnet = load_controlnet(RESOURCES / "models" / "sfumato-tiny-canny", "cpu", dtype)
    return VideoNets.of(pipe, controlnet, pipe.scheduler.config, "cpu", dtype)
