"""HTTP routes of the prompt language: token counts, LoRAs, embeddings (transport only)."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

from fastapi import APIRouter

from engine.prompts_protocol import EmbeddingInfo, LoraInfo, TokenCount, TokenCountRequest

#: The CLIP BPE every Stable Diffusion tokenizer uses (single-file checkpoints ship none).
_FALLBACK_TOKENIZER = Path(__file__).resolve().parents[2] / "resources/configs/sd15/tokenizer"


@functools.lru_cache(maxsize=4)
def _tokenizer_at(folder: str):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(folder, local_files_only=True)


def tokenizer_for(engine, model: str | None):
    """The loaded model's tokenizer, else the named/default model's from its folder (cheap:
    no weights), else the shipped CLIP BPE."""
    current = engine.models.current
    if current is not None and (model is None or model in (current.info.id, current.info.path)):
        return current.pipe.tokenizer
    from engine.errors import EngineError

    try:
        info = engine.queue.resolve_model(model)
    except EngineError:
        return _fallback_tokenizer()  # counting still works with the standard CLIP vocabulary
    folder = Path(info.path) / "tokenizer"
    return _tokenizer_at(str(folder)) if folder.is_dir() else _fallback_tokenizer()


@functools.cache
def _fallback_tokenizer():
    from engine.models.single_file import clip_tokenizer

    return clip_tokenizer(_FALLBACK_TOKENIZER)


def count_tokens(tokenizer, prompt: str, steps: int = 20) -> TokenCount:
    from engine.prompts.chunking import chunk_tokens, comma_token, tokenize_pieces
    from engine.prompts.parser import extract_networks, parse_emphasis, prompt_schedule

    text, _ = extract_networks(prompt)
    best = None
    for _, entry in prompt_schedule(text, steps):
        pieces = tokenize_pieces(tokenizer, parse_emphasis(entry))
        chunked = chunk_tokens(
            pieces, tokenizer.bos_token_id, tokenizer.eos_token_id, comma_token(tokenizer)
        )
        if best is None or chunked.token_count > best.token_count:
            best = chunked
    per_chunk = [sum(1 for t in c.tokens[1:-1] if t != tokenizer.eos_token_id) for c in best.chunks]
    return TokenCount(tokens=best.token_count, limit=75 * len(best.chunks), chunks=per_chunk)


def prompts_router(engine, prefix: str) -> APIRouter:
    router = APIRouter(prefix=prefix)

    @router.post("/prompts/tokens", response_model=TokenCount)
    async def tokens(req: TokenCountRequest) -> TokenCount:
        def count() -> TokenCount:
            return count_tokens(tokenizer_for(engine, req.model), req.prompt, req.steps)

        return await asyncio.to_thread(count)

    @router.get("/loras", response_model=list[LoraInfo])
    async def loras() -> list[LoraInfo]:
        from engine.prompts import loras as lora_files

        found = await asyncio.to_thread(lora_files.scan, engine.registry.folders)
        return [
            LoraInfo(
                name=f.name,
                path=str(f.path),
                base=f.base,
                context_dim=f.context_dim,
                format=f.format,
                problem=f.problem,
            )
            for f in found.values()
        ]

    @router.get("/embeddings", response_model=list[EmbeddingInfo])
    async def embeddings() -> list[EmbeddingInfo]:
        from engine.prompts import embeddings as ti

        found = await asyncio.to_thread(ti.scan, engine.registry.folders)
        return [
            EmbeddingInfo(
                name=n,
                path=str(p),
                problem=""
                if p.suffix == ".safetensors"
                else "a pickle: Sfumato never loads it; use .safetensors",
            )
            for n, p in found.items()
        ]

    return router
