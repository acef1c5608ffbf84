"""Where a loaded pipeline's parts live: all on the device, or offloaded for small GPUs.

Three modes (``sfumato-engine --offload``, ``POST /v1/models/load {"offload": …}``, reported in
``/v1/health`` as ``offload`` and ``offload_detail``):

- ``none``: every part on the device (the fastest).
- ``t5-cpu``: SD3/Flux's T5-XXL text encoder (4.8 B parameters, 9.5 GB in 16 bits — more than the
  Flux transformer's share of a 12 GB card) stays in host memory and runs on the CPU, once per
  prompt; its output is moved to the device. It runs in bfloat16 there (float16 overflows in
  T5, and half precision halves its host memory), or float32 when the engine computes in float32.
- ``model``: diffusers' model CPU offload (``enable_model_cpu_offload``): each part (text
  encoders, transformer/UNet, VAE) moves to the GPU only while it runs. Slower (weights cross
  PCIe every job), but the GPU holds only the largest part. Only meaningful with a GPU: on the
  CPU everything is already in host memory, which ``offload_detail`` says.
"""

from __future__ import annotations

from typing import Any

OFFLOAD_MODES = ("none", "t5-cpu", "model")


def t5_encoder(pipe: Any) -> Any | None:
    """The pipeline's T5 encoder (SD3's ``text_encoder_3``, Flux's ``text_encoder_2``), if any."""
    for name in ("text_encoder_3", "text_encoder_2"):
        module = getattr(pipe, name, None)
        if module is not None and type(module).__name__ == "T5EncoderModel":
            return module
    return None


def _inputs_to_cpu(_module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    import torch

    def cpu(x: Any) -> Any:
        return x.to("cpu") if isinstance(x, torch.Tensor) else x

    return tuple(cpu(a) for a in args), {k: cpu(v) for k, v in kwargs.items()}


def place(pipe: Any, device: str, dtype: Any, mode: str) -> str:
    """Move ``pipe``'s parts for ``mode`` (see the module docstring); returns the sentence
    Health shows (``offload_detail``)."""
    import torch

    if mode not in OFFLOAD_MODES:
        raise ValueError(f"unknown offload mode {mode!r}: use one of {', '.join(OFFLOAD_MODES)}")
    on_gpu = not device.startswith("cpu")
    if mode == "model":
        if not on_gpu:
            pipe.to(device)
            return "model offload applies to a GPU; on the CPU every part is in host memory already"
        pipe.enable_model_cpu_offload(device=device)
        return "each part moves to the GPU only while it runs"
    t5 = t5_encoder(pipe) if mode == "t5-cpu" else None
    if t5 is None:
        pipe.to(device)
        return (
            "this model has no T5 text encoder: every part is on the device"
            if mode == "t5-cpu"
            else ""
        )
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module) and component is not t5:
            component.to(device)
    t5_dtype = torch.float32 if dtype == torch.float32 else torch.bfloat16
    torch.nn.Module.to(t5, device="cpu", dtype=t5_dtype)
    if not getattr(t5, "_sfumato_on_cpu", False):
        t5.register_forward_pre_hook(_inputs_to_cpu, with_kwargs=True)
        t5._sfumato_on_cpu = True
    return f"T5 on the CPU ({str(t5_dtype).removeprefix('torch.')}); the rest on {device}"
