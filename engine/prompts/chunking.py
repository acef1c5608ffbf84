"""Weighted text → chunks of 75 tokens, the way A1111 cuts long prompts.

Each chunk is ``[BOS] + 75 tokens + [EOS]`` (padded with EOS), with one weight per token. A
prompt longer than 75 tokens continues in the next chunk; when a chunk fills up and a comma was
among its last :data:`COMMA_BACKTRACK` tokens, the words after that comma move to the next chunk
whole. ``BREAK`` ends a chunk early. A textual-inversion embedding's vectors never straddle two
chunks. The encoder runs once per chunk and the chunks' hidden states are concatenated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from engine.prompts.parser import BREAK

CHUNK = 75
COMMA_BACKTRACK = 20  # A1111's default "comma_padding_backtrack"


@dataclass
class Chunk:
    tokens: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    #: (offset in ``tokens``, embedding) — vectors that replace the placeholder tokens there
    fixes: list[tuple[int, object]] = field(default_factory=list)


@dataclass
class Chunked:
    chunks: list[Chunk]
    token_count: int  # tokens of the prompt, as A1111's counter shows them


#: Looks for a textual-inversion embedding at ``tokens[position:]``; returns (embedding, how
#: many prompt tokens its name takes) or (None, 0). The embedding has ``.vectors`` (an int).
EmbeddingLookup = Callable[[Sequence[int], int], tuple[object | None, int]]


def _no_embeddings(_tokens: Sequence[int], _position: int) -> tuple[None, int]:
    return None, 0


def chunk_tokens(
    pieces: list[tuple[list[int], float]],
    bos: int,
    eos: int,
    comma: int | None,
    find_embedding: EmbeddingLookup = _no_embeddings,
    backtrack: int = COMMA_BACKTRACK,
) -> Chunked:
    """Cut ``pieces`` — (token ids, weight) runs from :func:`parser.parse_emphasis`, a weight of
    −1 meaning BREAK — into padded 77-token chunks with their weights."""
    chunks: list[Chunk] = []
    chunk = Chunk()
    count = 0
    last_comma = -1

    def close(final: bool = False) -> None:
        nonlocal chunk, count, last_comma
        count += len(chunk.tokens) if final else CHUNK
        pad = CHUNK - len(chunk.tokens)
        chunk.tokens = [bos, *chunk.tokens, *[eos] * pad, eos]
        chunk.weights = [1.0, *chunk.weights, *[1.0] * pad, 1.0]
        chunk.fixes = [(offset + 1, emb) for offset, emb in chunk.fixes]
        chunks.append(chunk)
        chunk = Chunk()
        last_comma = -1

    for tokens, weight in pieces:
        if weight == -1:
            close()
            continue
        position = 0
        while position < len(tokens):
            token = tokens[position]
            if token == comma:
                last_comma = len(chunk.tokens)
            elif (
                backtrack
                and len(chunk.tokens) == CHUNK
                and last_comma != -1
                and len(chunk.tokens) - last_comma <= backtrack
            ):
                cut = last_comma + 1
                moved = Chunk(
                    chunk.tokens[cut:],
                    chunk.weights[cut:],
                    [(o - cut, e) for o, e in chunk.fixes if o >= cut],
                )
                chunk.tokens, chunk.weights = chunk.tokens[:cut], chunk.weights[:cut]
                chunk.fixes = [(o, e) for o, e in chunk.fixes if o < cut]
                close()
                chunk = moved
            if len(chunk.tokens) == CHUNK:
                close()
            embedding, length = find_embedding(tokens, position)
            if embedding is None:
                chunk.tokens.append(token)
                chunk.weights.append(weight)
                position += 1
                continue
            vectors = int(embedding.vectors)
            if len(chunk.tokens) + vectors > CHUNK:
                close()
            chunk.fixes.append((len(chunk.tokens), embedding))
            chunk.tokens += [0] * vectors
            chunk.weights += [weight] * vectors
            position += length
    if chunk.tokens or not chunks:
        close(final=True)
    return Chunked(chunks, count)


def tokenize_pieces(tokenizer, runs: list[tuple[str, float]]) -> list[tuple[list[int], float]]:
    """Token ids of each (text, weight) run, tokenized on its own as A1111 does."""
    texts = [text for text, _ in runs]
    ids = tokenizer(texts, truncation=False, add_special_tokens=False)["input_ids"]
    return [
        ([] if text == BREAK and w == -1 else tok, w)
        for tok, (text, w) in zip(ids, runs, strict=True)
    ]


def comma_token(tokenizer) -> int | None:
    return tokenizer.get_vocab().get(",</w>")
