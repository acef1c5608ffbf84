"""What the fast path's resident LoRA slots cost a UNet step (engine/prompts/lora_slots.py).

One UNet forward (CFG batch 2), eager, of an SD 1.5- or SDXL-architecture UNet with random
weights built from ``resources/configs/<arch>`` (it times like real weights), the three trees
of engine/prompts/lora_slots.py: "rest" (the fast path's fused q/k/v: jobs without LoRAs),
"slots" (LoRA jobs) and "plain" (unfused, no slots: the eager fallback). Prints milliseconds
per forward and the slots' parameters.

    python bench/lora_slots.py                                   # SD 1.5, CUDA if present
    python bench/lora_slots.py --arch sdxl --size 1024 --rank 64 --slots 2
    python bench/lora_slots.py --device cpu --size 256 --reps 3  # what a CPU can afford
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _time(unet, inputs, reps: int, device: str) -> float:
    import torch

    with torch.no_grad():
        unet(**inputs)  # warm
        times = []
        for _ in range(reps):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t = time.perf_counter()
            unet(**inputs)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    import torch
    from diffusers import UNet2DConditionModel

    from engine.prompts.lora_slots import LoraSlots

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="sd15", choices=["sd15", "sd2", "sdxl"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()

    dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    cfg = UNet2DConditionModel.load_config(REPO / "resources" / "configs" / args.arch / "unet")
    with torch.device(args.device):
        unet = UNet2DConditionModel.from_config(cfg).to(dtype).eval()
    c = unet.config
    h = args.size // 8
    inputs = {
        "sample": torch.randn(2, c.in_channels, h, h, device=args.device, dtype=dtype),
        "timestep": torch.full((2,), 500.0, device=args.device),
        "encoder_hidden_states": torch.randn(
            2, 77, c.cross_attention_dim, device=args.device, dtype=dtype
        ),
    }
    if c.addition_embed_type == "text_time":
        n_time = 6 * c.addition_time_embed_dim
        inputs["added_cond_kwargs"] = {
            "text_embeds": torch.randn(
                2, c.projection_class_embeddings_input_dim - n_time, device=args.device, dtype=dtype
            ),
            "time_ids": torch.randn(2, 6, device=args.device, dtype=dtype),
        }

    unet.fuse_qkv_projections()
    fused = _time(unet, inputs, args.reps, args.device)
    slots = LoraSlots.install(unet, args.rank, args.slots)
    with_slots = _time(unet, inputs, args.reps, args.device)
    slots.set_mode("plain")
    plain = _time(unet, inputs, args.reps, args.device)
    slots.set_mode("rest")
    rest = _time(unet, inputs, args.reps, args.device)
    print(
        f"{args.arch} {args.size}² on {args.device} ({dtype}), CFG batch 2, eager, median of "
        f"{args.reps}"
    )
    print(f"  fused q/k/v, before any LoRA     {fused:9.1f} ms")
    print(
        f"  slots (LoRA jobs)                {with_slots:9.1f} ms  ({with_slots / fused - 1:+.1%};"
        f" {args.slots} × rank {args.rank}: {slots.parameters() / 1e6:.1f} M parameters, "
        f"{slots.parameters() * unet.dtype.itemsize / 1e6:.0f} MB)"
    )
    print(f"  plain q/k/v (eager fallback)     {plain:9.1f} ms  ({plain / fused - 1:+.1%})")
    print(f"  rest (jobs without LoRAs after)  {rest:9.1f} ms  ({rest / fused - 1:+.1%})")


if __name__ == "__main__":
    main()
