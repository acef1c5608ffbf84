"""The VAE decode that never returns a black or NaN image in half precision.

Stable Diffusion's VAE decoder has activations beyond float16's range (65504) on some latents:
SDXL's original VAE on most images (its config says ``force_upcast``), SD 1.x's on a few
saturated ones. The decode then returns inf/NaN and the saved image is black. diffusers' SDXL
pipeline moves the whole VAE to float32 and back on every image; other pipelines and our own
decodes (uncertainty maps, video frames) do nothing.

:func:`install` wraps ``vae.decode`` once per loaded model:

- a VAE whose config asks for it (``force_upcast``) in float16 gets its decoder half
  (``post_quant_conv`` + ``decoder``) in float32 at once, and the pipelines' own per-image
  round trip is switched off (it would cast the encoder back and forth for nothing);
- otherwise the decode runs in the model's dtype and its output is checked; where any value is
  not finite, the decoder half moves to float32 for good (logged once) and the same latents
  are decoded again. The encoder stays in the model's dtype, so ``vae.dtype`` and every encode
  are unchanged.

Latents come in and images go out in the caller's dtype either way. The check costs one
reduction over the image (and, on a GPU, one synchronisation) per decode.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

log = logging.getLogger(__name__)

_MARK = "_sfumato_safe_decode"


def _decoder_parts(vae) -> list[torch.nn.Module]:
    parts = [vae.decoder]
    if getattr(vae, "post_quant_conv", None) is not None:
        parts.append(vae.post_quant_conv)
    return parts


def decoder_dtype(vae) -> torch.dtype:
    """The dtype the decoder half of ``vae`` computes in."""
    return next(vae.decoder.parameters()).dtype


def upcast_decoder(vae) -> None:
    """Move ``post_quant_conv`` and the decoder of ``vae`` to float32 (the encoder stays)."""
    for part in _decoder_parts(vae):
        part.to(torch.float32)


def _finite(out: Any) -> bool:
    sample = out[0] if isinstance(out, tuple) else out.sample
    return bool(torch.isfinite(sample).all())


def _cast_output(out: Any, dtype: torch.dtype) -> Any:
    if isinstance(out, tuple):
        return (out[0].to(dtype), *out[1:])
    out.sample = out.sample.to(dtype)
    return out


def install(vae) -> None:
    """Wrap ``vae.decode`` (an instance attribute, removed by :func:`uninstall`); idempotent."""
    if getattr(vae, _MARK, False):
        return
    original = vae.decode
    config = getattr(vae, "config", None)
    if getattr(config, "force_upcast", False) and decoder_dtype(vae) == torch.float16:
        upcast_decoder(vae)
        vae.register_to_config(force_upcast=False)  # the pipelines' round trip is not needed
        log.info("VAE decoder in float32: its config says float16 overflows")

    def decode(z: torch.Tensor, *args, **kwargs):
        dtype = z.dtype
        out = original(z.to(decoder_dtype(vae)), *args, **kwargs)
        # NaN/inf latents (a diverged sampler) decode to NaN in any dtype: no upcast for them
        if (
            decoder_dtype(vae) != torch.float32
            and not _finite(out)
            and bool(torch.isfinite(z).all())
        ):
            log.warning(
                "VAE decode overflowed in %s: decoding in float32 from now on",
                str(decoder_dtype(vae)).removeprefix("torch."),
            )
            upcast_decoder(vae)
            out = original(z.to(torch.float32), *args, **kwargs)
        return _cast_output(out, dtype) if dtype.is_floating_point else out

    vae.decode = decode
    setattr(vae, _MARK, True)


def uninstall(vae) -> None:
    """Back to the class's ``decode`` (the decoder keeps the dtype it has now)."""
    if getattr(vae, _MARK, False):
        del vae.decode
        delattr(vae, _MARK)
