"""The only place a prompt becomes tensors.

Every job conditions its model through this module: ``generate``, ``sampler_grid`` and the fits'
generated samples pass :meth:`PipeConditioning.call_kwargs` (``prompt_embeds=``,
``negative_prompt_embeds=`` and, for SDXL, the pooled embeddings) to the diffusers pipeline and
let :meth:`PipeConditioning.on_step_end` swap them when prompt editing says so; BayesDiff's
sampler takes the tensors per step from :meth:`PipeConditioning.at`; the fits' ε̂ and the video
editors take :func:`embed_prompts`. So a prompt means the same thing in Generate, in a grid cell,
in a fit and in a video edit.

What a prompt means is A1111's (docs/prompts.md): weights, ``BREAK``, 75-token chunks with the
comma back-off, the mean-restoring weight normalisation, prompt editing and alternation, textual
inversion, clip skip. Per chunk, with ``z`` the encoder's hidden states and ``w`` the weights:

    z' = z · w · mean(z) / mean(z · w)      (means over the whole batch of the chunk)

A plain prompt (no weights, ≤ 75 tokens) gives exactly diffusers' own embeddings, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.prompts.chunking import Chunk, chunk_tokens, comma_token, tokenize_pieces
from engine.prompts.parser import entry_at, extract_networks, parse_emphasis, prompt_schedule

# --------------------------------------------------------------------------- one text encoder


@dataclass
class TextEncoder:
    """One CLIP text encoder and which of its outputs conditions the UNet.

    ``hidden``: the penultimate layer's hidden state as it is (SDXL's two encoders).
    Otherwise the last hidden state, or with ``clip_skip`` n > 1 the n-th from last hidden state
    passed through the final layer norm (A1111's "Clip skip", SD 1.x only).
    """

    key: str  # textual-inversion vectors are stored under this name ("clip_l", "clip_g")
    tokenizer: Any
    model: Any
    hidden: bool = False
    clip_skip: int = 1
    pooled: bool = False  # also return the projected pooled output (SDXL's second encoder)

    @property
    def bos(self) -> int:
        return self.tokenizer.bos_token_id

    @property
    def eos(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def pad(self) -> int:
        pad = self.tokenizer.pad_token_id
        return self.eos if pad is None else pad

    def chunk(self, text: str, embeddings=None):
        runs = parse_emphasis(text)
        lookup = embeddings.lookup(self) if embeddings is not None else None
        args = (self.bos, self.eos, comma_token(self.tokenizer))
        pieces = tokenize_pieces(self.tokenizer, runs)
        return chunk_tokens(pieces, *args, lookup) if lookup else chunk_tokens(pieces, *args)

    def empty_chunk(self) -> Chunk:
        return chunk_tokens([], self.bos, self.eos, None).chunks[0]

    def forward(self, chunks: list[Chunk], device):
        """(z (B, 77, C), pooled (B, C') or None) for one chunk of each text, weights applied."""
        import torch

        ids = torch.tensor([c.tokens for c in chunks])
        if self.pad != self.eos:  # SD 2 / SDXL's OpenCLIP: pad after the first end token
            for row, c in enumerate(chunks):
                ids[row, c.tokens.index(self.eos) + 1 :] = self.pad
        hook = None
        if any(c.fixes for c in chunks):
            hook = self.model.get_input_embeddings().register_forward_hook(
                _fixes_hook(self.key, [c.fixes for c in chunks])
            )
        try:
            with torch.no_grad():
                skip = self.clip_skip > 1 and not self.hidden
                out = self.model(ids.to(device), output_hidden_states=self.hidden or skip)
        finally:
            if hook is not None:
                hook.remove()
        if self.hidden:
            z = out.hidden_states[-2]
        elif skip:
            norm = getattr(self.model, "text_model", self.model).final_layer_norm
            z = norm(out.hidden_states[-self.clip_skip])
        else:
            z = out[0]
        pooled = out[0] if self.pooled else None  # CLIPTextModelWithProjection: text_embeds
        weights = [c.weights for c in chunks]
        if any(w != 1.0 for row in weights for w in row):
            z = emphasise(z, torch.tensor(weights, device=z.device))
        return z.to(self.model.dtype), pooled


def emphasise(z, weights):
    """A1111's emphasis: scale each token's hidden state by its weight, then rescale the whole
    batch so that its mean is what it was (``z' = z·w·mean(z)/mean(z·w)``)."""
    with_weights = z * weights.reshape(*weights.shape, 1).expand(z.shape)
    return with_weights * (z.mean() / with_weights.mean())


def _fixes_hook(key: str, fixes: list[list[tuple[int, Any]]]):
    """A forward hook on the token embedding that puts textual-inversion vectors in place."""

    def hook(_module, _inputs, output):
        output = output.clone()
        for row, row_fixes in enumerate(fixes):
            for offset, embedding in row_fixes:
                vectors = embedding.vectors_for(key).to(output.device, output.dtype)
                n = min(output.shape[1] - offset, vectors.shape[0])
                output[row, offset : offset + n] = vectors[:n]
        return output

    return hook


def text_encoders(pipe, clip_skip: int = 1) -> list[TextEncoder]:
    """The pipeline's encoders as A1111 uses them: SDXL's two on their penultimate layer
    (clip skip does not apply), SD 2's OpenCLIP as it is (clip skip does not apply), SD 1's
    CLIP with clip skip."""
    if getattr(pipe, "text_encoder_2", None) is not None:
        return [
            TextEncoder("clip_l", pipe.tokenizer, pipe.text_encoder, hidden=True),
            TextEncoder("clip_g", pipe.tokenizer_2, pipe.text_encoder_2, hidden=True, pooled=True),
        ]
    return [single_encoder(pipe.tokenizer, pipe.text_encoder, clip_skip)]


def single_encoder(tokenizer, model, clip_skip: int = 1) -> TextEncoder:
    openclip = tokenizer.pad_token_id not in (None, tokenizer.eos_token_id)
    return TextEncoder("clip_l", tokenizer, model, clip_skip=1 if openclip else clip_skip)


# --------------------------------------------------------------------------- texts → tensors


@dataclass
class Encoded:
    """A batch of texts encoded: (B, 77·chunks, C) and SDXL's pooled (B, C') from chunk 0."""

    z: Any
    pooled: Any = None
    token_count: int = 0


def encode_texts(
    encoders: list[TextEncoder], texts: list[str], device, embeddings=None, chunks: int = 0
) -> Encoded:
    """Encode texts as one batch per chunk (A1111 normalises weights over that batch); texts
    with fewer chunks than the longest (or than ``chunks``) are padded with empty chunks."""
    import torch

    zs, pooled, count = [], None, 0
    per_encoder = [[enc.chunk(t, embeddings) for t in texts] for enc in encoders]
    n = max([chunks, *(len(c.chunks) for cs in per_encoder for c in cs)])
    for enc, chunked in zip(encoders, per_encoder, strict=True):
        count = max([count, *(c.token_count for c in chunked)])
        parts = []
        for i in range(n):
            batch = [c.chunks[i] if i < len(c.chunks) else enc.empty_chunk() for c in chunked]
            z, p = enc.forward(batch, device)
            parts.append(z)
            if i == 0 and p is not None:
                pooled = p
        zs.append(torch.cat(parts, dim=1))
    return Encoded(torch.cat(zs, dim=-1) if len(zs) > 1 else zs[0], pooled, count)


def embed_prompts(
    encoders: list[TextEncoder], prompts: list[str], device, embeddings=None, max_chunks: int = 0
) -> Any:
    """(N, T, C) conditioning of each prompt as it reads at the first step, padded with empty
    chunks to a common length (fits' captions, video prompts); ``max_chunks`` > 0 keeps only
    that many 75-token chunks. ``<lora:…>`` tags are dropped, never read as words (these
    callers do not apply LoRAs)."""
    try:
        texts = [prompt_schedule(extract_networks(p)[0], 1)[0][1] for p in prompts]
    except ValueError as exc:  # a <lora:name:weight> whose weight is not a number
        from engine.errors import EngineError

        raise EngineError(str(exc), "params.prompt") from None
    z = encode_texts(encoders, texts, device, embeddings).z
    return z[:, : 77 * max_chunks] if max_chunks else z


# --------------------------------------------------------------------------- pipeline calls


@dataclass
class Schedule:
    """One prompt through the sampling steps: entry k holds up to step ``ends[k]``."""

    ends: list[int]
    z: Any  # (K, T, C)
    pooled: Any = None  # (K, C')

    def index(self, step: int) -> int:
        return entry_at([(e, None) for e in self.ends], step)

    def pad_to(self, tokens: int, filler) -> None:
        import torch

        missing = (tokens - self.z.shape[1]) // filler.shape[1]
        if missing > 0:
            fill = filler.to(self.z).expand(self.z.shape[0], -1, -1).repeat(1, missing, 1)
            self.z = torch.cat([self.z, fill], dim=1)


@dataclass
class PipeConditioning:
    """A prompt and its negative encoded for one pipeline call, per sampling step.

    ``uncond`` is None when the call runs without classifier-free guidance.
    """

    cond: Schedule
    uncond: Schedule | None = None
    token_counts: tuple[int, int] = (0, 0)
    _current: tuple[int, int] = field(default=(0, 0), repr=False)

    @property
    def scheduled(self) -> bool:
        return len(self.cond.ends) > 1 or (self.uncond is not None and len(self.uncond.ends) > 1)

    def at(self, step: int):
        """(cond (1, T, C), uncond or None, pooled or None, uncond pooled or None) at ``step``."""
        c, u = self.cond, self.uncond
        i = c.index(step)
        j = u.index(step) if u is not None else 0
        return (
            c.z[i : i + 1],
            u.z[j : j + 1] if u is not None else None,
            c.pooled[i : i + 1] if c.pooled is not None else None,
            u.pooled[j : j + 1] if u is not None and u.pooled is not None else None,
        )

    def call_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``pipe(...)``: the first step's embeddings instead of text."""
        cond, uncond, pooled, uncond_pooled = self.at(0)
        kwargs = {"prompt_embeds": cond}
        if uncond is not None:
            kwargs["negative_prompt_embeds"] = uncond
        if pooled is not None:
            kwargs["pooled_prompt_embeds"] = pooled
            if uncond_pooled is not None:
                kwargs["negative_pooled_prompt_embeds"] = uncond_pooled
        return kwargs

    @property
    def tensor_inputs(self) -> list[str]:
        """What ``callback_on_step_end_tensor_inputs`` must hold for :meth:`on_step_end`."""
        if not self.scheduled:
            return []
        return ["prompt_embeds"] + (["add_text_embeds"] if self.cond.pooled is not None else [])

    def on_step_end(self, i: int, kwargs: dict) -> dict:
        """From a ``callback_on_step_end``: the embeddings for iteration ``i + 1`` where prompt
        editing or alternation changes them ({} otherwise). Iterations are counted as A1111
        counts its denoiser calls (Heun and DPM2 call twice a step)."""
        import torch

        if not self.scheduled or "prompt_embeds" not in kwargs:
            return {}
        step = i + 1
        key = (self.cond.index(step), self.uncond.index(step) if self.uncond else 0)
        if key == self._current:
            return {}
        self._current = key
        cond, uncond, pooled, uncond_pooled = self.at(step)
        batch = kwargs["prompt_embeds"].shape[0] // (2 if uncond is not None else 1)
        out = {}
        embeds = cond.repeat(batch, 1, 1)
        if uncond is not None:
            embeds = torch.cat([uncond.repeat(batch, 1, 1), embeds])
        out["prompt_embeds"] = embeds.to(kwargs["prompt_embeds"])
        if pooled is not None and "add_text_embeds" in kwargs:
            text = pooled.repeat(batch, 1)
            if uncond_pooled is not None:
                text = torch.cat([uncond_pooled.repeat(batch, 1), text])
            out["add_text_embeds"] = text.to(kwargs["add_text_embeds"])
        return out


def guided(pipe, guidance_scale: float) -> bool:
    """Whether the pipeline runs classifier-free guidance at this scale (as diffusers decides)."""
    return guidance_scale > 1 and getattr(pipe.unet.config, "time_cond_proj_dim", None) is None


def _schedule(encoders, prompt: str, steps: int, device, embeddings, zero: bool) -> tuple:
    import torch

    entries = prompt_schedule(prompt, steps)
    enc = encode_texts(encoders, [text for _, text in entries], device, embeddings)
    z, pooled = enc.z, enc.pooled
    if zero:  # SDXL's empty negative prompt: zeros, as diffusers and A1111 both do
        z = torch.zeros_like(z)
        pooled = torch.zeros_like(pooled) if pooled is not None else None
    return Schedule([end for end, _ in entries], z, pooled), enc.token_count


def encode_for_pipe(
    pipe,
    prompt: str,
    negative_prompt: str,
    guidance_scale: float,
    device,
    *,
    steps: int = 1,
    clip_skip: int = 1,
    embeddings=None,
) -> PipeConditioning:
    """Encode ``prompt`` and ``negative_prompt`` (may be empty) for one pipeline call of
    ``steps`` steps. ``embeddings``: an :class:`engine.prompts.embeddings.EmbeddingLibrary`."""
    import torch

    encoders = text_encoders(pipe, clip_skip)
    cond, n_cond = _schedule(encoders, prompt, steps, device, embeddings, zero=False)
    uncond, n_uncond = None, 0
    if guided(pipe, guidance_scale):
        zero = not negative_prompt and bool(
            getattr(pipe.config, "force_zeros_for_empty_prompt", False)
        )
        uncond, n_uncond = _schedule(
            encoders, negative_prompt or "", steps, device, embeddings, zero
        )
        tokens = max(cond.z.shape[1], uncond.z.shape[1])
        if cond.z.shape[1] != uncond.z.shape[1]:
            # A1111's "pad prompt/negative prompt to be same length": empty chunks
            empty = encode_texts(encoders, [""], device).z
            for side in (cond, uncond):
                side.pad_to(tokens, torch.zeros_like(empty) if side is uncond and zero else empty)
    return PipeConditioning(cond, uncond, (n_cond, n_uncond))


# --------------------------------------------------------------------------- flow transformers


def is_flow_pipe(pipe) -> bool:
    """A rectified-flow transformer pipeline (SD3/SD3.5, Flux): T5 beside CLIP, no UNet."""
    return getattr(pipe, "transformer", None) is not None and hasattr(pipe, "tokenizer_2")


def plain_text(prompt: str) -> str:
    """The words of an A1111 prompt as a flow model reads them: the text as it stands at the
    first step, emphasis brackets and ``BREAK`` taken out (weights are not applied to T5)."""
    text = prompt_schedule(prompt, 1)[0][1]
    return "".join(run for run, weight in parse_emphasis(text) if weight >= 0).strip()


def encode_flow(
    pipe,
    prompt: str,
    negative_prompt: str,
    guidance_scale: float,
    device,
) -> PipeConditioning:
    """SD3 and Flux conditioning through the pipeline's own ``encode_prompt``.

    SD3/SD3.5: CLIP-L and CLIP-G (penultimate layers, concatenated, zero-padded to T5's width)
    then T5 along the tokens; pooled = both CLIPs' projected outputs. Its CFG runs when
    ``guidance_scale`` > 1. Flux: T5 tokens, CLIP-L pooled; its distilled guidance is not CFG,
    so the negative prompt is encoded only for true CFG (``guidance_scale`` > 1 *and* a
    negative prompt, as diffusers decides; Forge's "CFG Scale" beside the "Distilled CFG
    Scale"). A1111 weights and prompt editing do not apply
    (the first step's text is encoded, brackets removed); docs/flow-models.md says why.
    """
    import torch

    text, negative = plain_text(prompt), plain_text(negative_prompt)
    cfg = guidance_scale > 1
    sd3 = hasattr(pipe, "tokenizer_3")
    t5 = pipe.tokenizer_3 if sd3 else pipe.tokenizer_2
    # the pipelines' T5 lengths (SD3 256, Flux 512) unless the tokenizer is shorter
    length = min(256 if sd3 else 512, t5.model_max_length if t5 is not None else 512)
    with torch.no_grad():
        if sd3:
            z, neg_z, pooled, neg_pooled = pipe.encode_prompt(
                text,
                None,
                None,
                device=device,
                do_classifier_free_guidance=cfg,
                negative_prompt=negative,
                max_sequence_length=length,
            )
        else:  # Flux
            z, pooled, _ids = pipe.encode_prompt(
                text, None, device=device, max_sequence_length=length
            )
            neg_z = neg_pooled = None
            cfg = cfg and bool(negative)  # diffusers' rule: true CFG needs a negative prompt
            if cfg:
                neg_z, neg_pooled, _ids = pipe.encode_prompt(
                    negative, None, device=device, max_sequence_length=length
                )
    # T5 on the CPU (engine/models/placement.py) answers in its own dtype: the transformer's here
    dtype = pipe.transformer.dtype
    z, pooled = z.to(dtype), pooled.to(dtype)
    if neg_z is not None:
        neg_z, neg_pooled = neg_z.to(dtype), neg_pooled.to(dtype)
    uncond = Schedule([1], neg_z, neg_pooled) if cfg and neg_z is not None else None
    return PipeConditioning(Schedule([1], z, pooled), uncond)
