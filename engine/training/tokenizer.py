"""A CLIP BPE tokenizer learnt from the captions, in CLIP's own vocab.json + merges.txt format.

No CLIP vocabulary can be downloaded, and CLIP's 49k-token one would make the embedding table of
a tiny text encoder bigger than the rest of the model. So we learn BPE merges on the caption
words until every caption word is a single token (``"cat</w>"``), over CLIP's 512 byte-level
base symbols: any other text still tokenizes, into pieces. ``transformers.CLIPTokenizer`` reads
the result exactly as it reads SD's tokenizer.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import regex

# CLIP's pre-tokenizer pattern (after lower-casing), from openai/CLIP simple_tokenizer.py.
_PAT = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)


def bytes_to_unicode() -> dict[int, str]:
    """CLIP/GPT-2's reversible byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def caption_words(captions: list[str]) -> Counter:
    byte_enc = bytes_to_unicode()
    words: Counter = Counter()
    for text in captions:
        for w in _PAT.findall(" ".join(text.lower().split())):
            words["".join(byte_enc[b] for b in w.encode("utf-8"))] += 1
    return words


def learn_merges(words: Counter) -> list[tuple[str, str]]:
    """Plain BPE (Sennrich et al. 2016) run to completion: every word ends as one symbol."""
    seqs = {w: tuple(w[:-1]) + (w[-1] + "</w>",) for w in words}
    merges: list[tuple[str, str]] = []
    while True:
        pairs: Counter = Counter()
        for w, seq in seqs.items():
            for a, b in itertools.pairwise(seq):
                pairs[(a, b)] += words[w]
        if not pairs:
            return merges
        # Most frequent first; ties broken by the pair itself so the result is deterministic.
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        joined = best[0] + best[1]
        for w, seq in seqs.items():
            out, i = [], 0
            while i < len(seq):
                if i + 1 < len(seq) and (seq[i], seq[i + 1]) == best:
                    out.append(joined)
                    i += 2
                else:
                    out.append(seq[i])
                    i += 1
            seqs[w] = tuple(out)


def build_clip_tokenizer(captions: list[str], folder: Path, max_length: int = 77):
    """Write a CLIPTokenizer for ``captions`` into ``folder`` and return it."""
    from transformers import CLIPTokenizer

    merges = learn_merges(caption_words(captions))
    base = list(bytes_to_unicode().values())
    vocab = base + [c + "</w>" for c in base] + ["".join(m) for m in merges]
    vocab = list(dict.fromkeys(vocab)) + ["<|startoftext|>", "<|endoftext|>"]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    tok = CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=max_length
    )
    tok.save_pretrained(folder)
    return CLIPTokenizer.from_pretrained(folder)
