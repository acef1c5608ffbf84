"""BayesDiff overhead: time with uncertainty ÷ time without, same run, DDIM 25 steps.

Both paths run the engine's own code in process: without uncertainty the diffusers pipeline
(what a plain ``generate`` job runs), with it :mod:`engine.uncertainty` (propagation with S
samples every k-th step, then M decodes for the pixel map). Each is timed ``--repeats`` times
after a warm-up, alternating, and the medians compared.

    python bench/uncertainty.py                 # the embedded model on this machine's device
    python bench/uncertainty.py --sd15          # SD-1.5 architecture, random weights, 512×512
                                                # (built from the UNet/VAE configs; a GPU box)

The posterior of the --sd15 model is a stand-in (unit variances): timing does not depend on it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SD15_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "down_block_types": (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    "up_block_types": (
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ),
}
SD15_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "sample_size": 512,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
}


def _pipe(args, device, dtype):
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    if not args.sd15:
        pipe = StableDiffusionPipeline.from_pretrained(
            REPO / "resources/models/sfumato-tiny", safety_checker=None, torch_dtype=dtype
        )
        return pipe.to(device), int(pipe.unet.config.sample_size * pipe.vae_scale_factor)
    from diffusers import AutoencoderKL, UNet2DConditionModel

    base = StableDiffusionPipeline.from_pretrained(
        REPO / "resources/models/sfumato-tiny", safety_checker=None
    )
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD15_UNET)
    vae = AutoencoderKL(**SD15_VAE)
    # The tiny text encoder stands in (its width is padded to 768 by a projection-free repeat).
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=base.text_encoder,
        tokenizer=base.tokenizer,
        unet=unet,
        scheduler=DDIMScheduler.from_config(base.scheduler.config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    width = base.text_encoder.config.hidden_size
    orig = pipe.encode_prompt

    def encode_prompt(*a, **k):
        c, u = orig(*a, **k)
        pad = lambda e: None if e is None else e.repeat(1, 1, -(-768 // width))[..., :768]
        return pad(c), pad(u)

    pipe.encode_prompt = encode_prompt
    return pipe.to(device, dtype), 512


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sd15", action="store_true")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--samples", type=int, default=5, help="S")
    ap.add_argument("--skip", type=int, default=5, help="k")
    ap.add_argument("--decodes", type=int, default=8, help="M")
    ap.add_argument("--cfg", type=float, default=7.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    import torch
    from diffusers import DDIMScheduler

    from engine.uncertainty.eps_model import EpsModel
    from engine.uncertainty.laplace import LastLayerPosterior
    from engine.uncertainty.pixel_map import decode, latent_samples, pixel_variance
    from engine.uncertainty.propagate import propagate

    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    pipe, size = _pipe(args, device, dtype)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = DDIMScheduler.from_config(
        pipe.scheduler.config, set_alpha_to_one=False, clip_sample=False
    )
    conv = pipe.unet.conv_out
    post = LastLayerPosterior(
        torch.full_like(conv.weight, 1e-4, dtype=torch.float32),
        torch.full((conv.out_channels,), 1e-4),
        (1, 1),
    )
    prompt = "a red fox in the snow"

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def plain():
        pipe(
            prompt,
            num_inference_steps=args.steps,
            guidance_scale=args.cfg,
            width=size,
            height=size,
            generator=torch.Generator("cpu").manual_seed(1),
            output_type="pil",
        )

    def with_uncertainty():
        sched = pipe.scheduler
        cond, uncond = pipe.encode_prompt(prompt, device, 1, True)
        model = EpsModel(pipe.unet, post, cond, uncond, args.cfg, "epsilon")
        sched.set_timesteps(args.steps, device=device)
        x_T = pipe.prepare_latents(
            1, 4, size, size, cond.dtype, device, [torch.Generator("cpu").manual_seed(1)]
        )
        prop = propagate(model, sched, x_T, samples=args.samples, skip=args.skip)
        with torch.no_grad():
            img = decode(pipe.vae, prop.mean.to(dtype), dtype, unit=False)
            pipe.image_processor.postprocess(img, output_type="pil")
            z = latent_samples(prop.mean, prop.var, args.decodes, torch.Generator().manual_seed(2))
            pixel_variance(decode(pipe.vae, z, dtype), args.decodes)

    def timed(fn):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - t0

    timed(plain)
    timed(with_uncertainty)
    a, b = [], []
    for _ in range(args.repeats):
        a.append(timed(plain))
        b.append(timed(with_uncertainty))
    pa, pb = statistics.median(a), statistics.median(b)
    name = "SD-1.5 architecture (random weights)" if args.sd15 else "sfumato-tiny"
    gpu = (
        torch.cuda.get_device_name()
        if device == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(
        f"{name}, {size}×{size}, DDIM {args.steps} steps, CFG {args.cfg}, S={args.samples} "
        f"k={args.skip} M={args.decodes}, on {gpu}"
    )
    print(f"without uncertainty: {pa:.3f} s   with: {pb:.3f} s   ratio: {pb / pa:.2f}×")


if __name__ == "__main__":
    main()
