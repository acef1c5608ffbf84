"""Video editing on a GPU: seconds and peak memory of LOVECon (48 frames) and ControlVideo
(8 and 24 frames; tuning and editing separately) at 512×512 on a Stable-Diffusion-1.5-
architecture model and a ControlNet built from its UNet, all with random weights (they time
exactly like real ones). The frames are the repo's sample clip scaled up; canny control.

    python bench/video.py                                   # GPU: the issue's numbers
    python bench/video.py --device cpu --size 64 --frames 8 --cv-frames 4 --steps 2 \
        --tuning-steps 2 --model-dir resources/models/sfumato-tiny    # smoke run

Options mirror VideoEditParams' memory switches (--no-fp16, --frame-chunk, --vae-tiling,
--attention-slicing). Writes JSON with --out. Report the numbers in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class StageClock:
    """A progress callback that times stages and their peak GPU memory: each call reports a
    unit of work that just finished, so the time since the previous call is that stage's."""

    def __init__(self, device: str) -> None:
        import torch

        self.cuda = device.startswith("cuda")
        self.torch = torch
        self.t0, self.out = time.perf_counter(), {}
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()

    def __call__(self, stage: str, _n: int) -> None:
        stage = "editing" if stage.startswith(("window", "inversion", "sampling")) else stage
        if self.cuda:
            self.torch.cuda.synchronize()
        now = time.perf_counter()
        rec = self.out.setdefault(stage, {"seconds": 0.0, "peak_gib": 0.0})
        rec["seconds"] = round(rec["seconds"] + now - self.t0, 2)
        if self.cuda:
            peak = self.torch.cuda.max_memory_allocated() / 2**30
            rec["peak_gib"] = round(max(rec["peak_gib"], peak), 2)
            self.torch.cuda.reset_peak_memory_stats()
        self.t0 = now

    def close(self) -> None:
        self("rest (last decode, smoothing)", 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument(
        "--model-dir",
        type=Path,
        help="an SD 1.x diffusers folder (default: SD 1.5 architecture with random weights)",
    )
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--frames", type=int, default=48, help="LOVECon frames")
    ap.add_argument("--cv-frames", type=int, nargs="+", default=[8, 24])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--tuning-steps", type=int, default=80)
    ap.add_argument("--no-fp16", action="store_true")
    ap.add_argument("--frame-chunk", type=int, default=0)
    ap.add_argument("--vae-tiling", action="store_true")
    ap.add_argument("--attention-slicing", action="store_true")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()

    import torch
    from diffusers import ControlNetModel, StableDiffusionPipeline

    from engine.video import controlvideo, lovecon
    from engine.video.control import canny_maps
    from engine.video.denoise import VideoNets
    from engine.video.sample_clip import sample_frames
    from engine.video_protocol import VideoEditParams

    fp16 = a.device.startswith("cuda") and not a.no_fp16
    dtype = torch.float16 if fp16 else torch.float32
    model_dir = a.model_dir
    if model_dir is None:
        from bench.gpu_generate import build_random_pipeline

        model_dir = build_random_pipeline("sd15", Path(tempfile.mkdtemp()) / "sd15", dtype)
    pipe = StableDiffusionPipeline.from_pretrained(
        model_dir, torch_dtype=dtype, safety_checker=None
    ).to(a.device)
    torch.manual_seed(0)
    # the conditioning embedding downsamples images to the latent size: one stage per VAE ×2
    levels = int(math.log2(pipe.vae_scale_factor)) + 1
    controlnet = (
        ControlNetModel.from_unet(
            pipe.unet,
            conditioning_embedding_out_channels=(16, 32, 96, 256)[:levels],
        )
        .to(a.device, dtype)
        .eval()
    )
    nets = VideoNets.of(
        pipe, controlnet, pipe.scheduler.config, a.device, dtype, frame_chunk=a.frame_chunk
    )
    nets.layout.slice_batch = 1 if a.attention_slicing else 0
    if a.vae_tiling:
        pipe.vae.enable_tiling()
    base = {
        "source": "bench",
        "source_prompt": "a t-rex on a white background",
        "target_prompt": "a t-rex on a blue background",
        "edit_type": "background",
        "edit_phrase": "t-rex",
        "steps": a.steps,
        "width": a.size,
        "height": a.size,
        "tuning_steps": a.tuning_steps,
        "frame_chunk": a.frame_chunk,
    }
    report = {
        "device": torch.cuda.get_device_name() if a.device.startswith("cuda") else a.device,
        "size": a.size,
        "steps": a.steps,
        "tuning_steps": a.tuning_steps,
        "dtype": str(dtype),
        "model": str(a.model_dir or "sd15 random"),
        "runs": {},
    }

    frames = sample_frames(a.frames, a.size, a.size)
    maps = canny_maps(frames)
    clock = StageClock(a.device)
    t = time.perf_counter()
    lovecon.edit(nets, frames, maps, VideoEditParams(**base), clock)
    clock.close()
    report["runs"][f"lovecon_{a.frames}"] = {
        "total_s": round(time.perf_counter() - t, 2),
        "frames": a.frames,
        "stages": clock.out,
    }
    print(json.dumps(report["runs"][f"lovecon_{a.frames}"]), flush=True)
    for n in a.cv_frames:
        frames = sample_frames(n, a.size, a.size)
        maps = canny_maps(frames)
        clock = StageClock(a.device)
        t = time.perf_counter()
        controlvideo.edit(nets, frames, maps, VideoEditParams(**base, method="controlvideo"), clock)
        clock.close()
        report["runs"][f"controlvideo_{n}"] = {
            "total_s": round(time.perf_counter() - t, 2),
            "frames": n,
            "stages": clock.out,
        }
        print(json.dumps(report["runs"][f"controlvideo_{n}"]), flush=True)
    print(json.dumps(report, indent=1))
    if a.out:
        a.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
