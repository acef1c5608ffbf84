"""What a rectified-flow pipeline (SD3/SD3.5, Flux) takes beyond the common call arguments.

Kept out of ``engine/generate.py`` so the generate job stays one code path for every model:
it asks :func:`guidance_kwargs` for the guidance arguments and :func:`preview_latents` for a
latent it can preview. docs/flow-models.md is the user-facing side.
"""

from __future__ import annotations

from typing import Any

from engine.protocol import GenerateParams

#: Flux.1-dev's guidance when the recipe sets none (Forge's and diffusers' default).
FLUX_DEFAULT_GUIDANCE = 3.5


def is_flux(pipe) -> bool:
    return type(pipe).__name__.startswith("Flux")


def guidance_kwargs(pipe, p: GenerateParams) -> dict[str, Any]:
    """``guidance_scale`` (and Flux's ``true_cfg_scale``) for ``pipe(...)``.

    SD 1/2/XL and SD3: classifier-free guidance at ``cfg_scale``. Flux: ``guidance_scale`` is the
    distilled guidance fed to the transformer's guidance embedding (Forge's "Distilled CFG
    Scale", ``p.flow.guidance``) and ``cfg_scale`` > 1 with a negative prompt runs true CFG
    (two transformer calls a step); without a negative prompt ``cfg_scale`` is not used.
    """
    if not is_flux(pipe):
        return {"guidance_scale": p.cfg_scale}
    guidance = p.flow.guidance if p.flow is not None and p.flow.guidance is not None else None
    return {
        "guidance_scale": FLUX_DEFAULT_GUIDANCE if guidance is None else guidance,
        "true_cfg_scale": p.cfg_scale,
    }


def preview_latents(pipe, latents, p: GenerateParams):
    """(B, C, h, w) latents for the previewer: Flux packs 2×2 patches into tokens
    (B, h·w/4, 4C) during sampling, which are unpacked here."""
    if latents.ndim == 3 and hasattr(pipe, "_unpack_latents"):
        return pipe._unpack_latents(latents, p.height, p.width, pipe.vae_scale_factor)
    return latents
