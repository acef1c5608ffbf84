"""The only place a prompt becomes tensors.

Every job conditions its model through this module: ``generate``, ``sampler_grid``, robustness
and the fits' generated samples pass :meth:`PipeConditioning.call_kwargs` (``prompt_embeds=``,
``negative_prompt_embeds=`` and, for SDXL, the pooled embeddings) to the diffusers pipeline;
BayesDiff's sampler, the fits' ε̂ and the video editors take the tensors themselves. So a prompt
means the same thing in Generate, in a grid cell, in a fit and in a video edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class PipeConditioning:
    """A prompt and its negative, encoded for one diffusers pipeline call.

    ``cond``/``uncond`` are (1, T, C); ``pooled``/``uncond_pooled`` (1, C') for SDXL, else None.
    ``uncond`` is None when the call runs without classifier-free guidance.
    """

    cond: Any
    uncond: Any = None
    pooled: Any = None
    uncond_pooled: Any = None

    def call_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``pipe(...)``: the embeddings instead of the prompt text."""
        kwargs = {"prompt_embeds": self.cond}
        if self.uncond is not None:
            kwargs["negative_prompt_embeds"] = self.uncond
        if self.pooled is not None:
            kwargs["pooled_prompt_embeds"] = self.pooled
            if self.uncond_pooled is not None:
                kwargs["negative_pooled_prompt_embeds"] = self.uncond_pooled
        return kwargs


def guided(pipe, guidance_scale: float) -> bool:
    """Whether the pipeline runs classifier-free guidance at this scale (as diffusers decides)."""
    return guidance_scale > 1 and getattr(pipe.unet.config, "time_cond_proj_dim", None) is None


def encode_for_pipe(pipe, prompt: str, negative_prompt: str, guidance_scale: float,
                    device) -> PipeConditioning:
    """Encode ``prompt`` and ``negative_prompt`` (may be empty) for one pipeline call."""
    import torch

    do_cfg = guided(pipe, guidance_scale)
    with torch.no_grad():
        out = pipe.encode_prompt(prompt=prompt, device=device, num_images_per_prompt=1,
                                 do_classifier_free_guidance=do_cfg,
                                 negative_prompt=negative_prompt or None)
    if getattr(pipe, "text_encoder_2", None) is not None:
        cond, uncond, pooled, uncond_pooled = out
        return PipeConditioning(cond, uncond if do_cfg else None, pooled,
                                uncond_pooled if do_cfg else None)
    cond, uncond = out
    return PipeConditioning(cond, uncond if do_cfg else None)


def embed_texts(tokenizer, text_encoder, texts: list[str], device) -> Any:
    """(N, 77, C) hidden states of the text encoder for each text, one chunk, truncated."""
    import torch

    tok = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt")
    with torch.no_grad():
        return text_encoder(tok.input_ids.to(device))[0]
