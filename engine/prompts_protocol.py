"""The prompt part of the wire protocol (issue 19): token counts, installed LoRAs and embeddings.

Pydantic and the standard library only (the app imports it; it never imports torch). See
``docs/prompts.md``.

- ``POST /v1/prompts/tokens`` :class:`TokenCountRequest` → :class:`TokenCount`: the prompt's
  tokens as the engine's tokenizer counts them, per 75-token chunk, A1111's way ("83 / 150").
- ``GET /v1/loras`` → ``list[LoraInfo]``: the LoRAs in the models folders' ``loras/``, with the
  base each was made for (their tags: ``<lora:name:weight>``).
- ``GET /v1/embeddings`` → ``list[EmbeddingInfo]``: textual-inversion embeddings by name.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class TokenCountRequest(BaseModel):
    prompt: str = ""
    model: str | None = Field(None, description="Whose tokenizer; None = the loaded/default one")
    steps: int = Field(
        20,
        ge=1,
        le=1000,
        description="For prompt editing: the longest of its prompts through these steps counts",
    )


class TokenCount(BaseModel):
    tokens: int = Field(description="Tokens of the prompt (the longest of its edited forms)")
    limit: int = Field(description="Tokens its chunks hold: 75 × chunks, as A1111 shows it")
    chunks: list[int] = Field(description="Tokens in each 75-token chunk")


class LoraInfo(BaseModel):
    name: str
    path: str
    base: str = Field(description="What it was made for: SD 1.x, SD 2.x, SDXL, or a width")
    context_dim: int = 0
    format: str = Field("", description="kohya | diffusers")
    problem: str = Field("", description="Why it cannot be used, if it cannot")


class EmbeddingInfo(BaseModel):
    name: str
    path: str
    problem: str = ""
