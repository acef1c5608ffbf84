"""Build the CLIP BPE tokenizer files (``clip_bpe/vocab.json.gz``, ``clip_bpe/merges.txt.gz``).

Stable Diffusion's tokenizers (OpenAI CLIP ViT-L/14 for SD 1.x and SDXL's first encoder, OpenCLIP
ViT-H/bigG for SD 2.x and SDXL's second) share one byte-level BPE vocabulary of 49,408 tokens.
Nothing can be downloaded from the Hugging Face hub, but the ``open_clip_torch`` wheel on PyPI
ships that vocabulary's merge list as ``open_clip/bpe_simple_vocab_16e6.txt.gz`` (MIT licence,
from OpenAI's CLIP). This script turns it into the Hugging Face ``CLIPTokenizer`` files exactly as
CLIP's ``SimpleTokenizer`` builds its encoder:

    vocab = byte chars + [c + "</w>" for c in byte chars] + ["".join(m) for m in merges[:48894]]
            + ["<|startoftext|>", "<|endoftext|>"]

Usage (the source is found in an installed ``open_clip`` package, a downloaded wheel, or a path)::

    pip download open_clip_torch --no-deps -d /tmp/oc
    python resources/configs/make_tokenizer.py --source /tmp/oc/open_clip_torch-*.whl

The output is committed; the engine reads it with :func:`engine.models.single_file.clip_tokenizer`.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import io
import json
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "clip_bpe"
BPE_NAME = "bpe_simple_vocab_16e6.txt.gz"
N_MERGES = 49152 - 256 - 2  # 48,894: CLIP's vocab is 49,408 = 2 * 256 bytes + merges + 2 specials
EXPECTED = {"a photo of a cat": [49406, 320, 1125, 539, 320, 2368, 49407]}


def bytes_to_unicode() -> list[str]:
    """The 256 printable stand-ins for bytes, in CLIP's (and GPT-2's) order."""
    import sys

    sys.path.insert(0, str(HERE.parents[1]))  # the repo root, for engine.training
    from engine.training.tokenizer import bytes_to_unicode as table

    return list(table().values())


def read_bpe_source(source: Path | None) -> bytes:
    """The gzipped merge list from a .txt.gz file, an open_clip wheel, or the installed package."""
    if source is None:
        spec = importlib.util.find_spec("open_clip")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("open_clip is not installed: pass --source <wheel or .txt.gz>")
        source = Path(next(iter(spec.submodule_search_locations))) / BPE_NAME
    if source.suffix in {".whl", ".zip"}:
        with zipfile.ZipFile(source) as zf:
            name = next(n for n in zf.namelist() if n.endswith("/" + BPE_NAME))
            return zf.read(name)
    return source.read_bytes()


def build(bpe_gz: bytes) -> tuple[dict[str, int], list[str]]:
    """CLIP's vocabulary (token -> id) and merges (``"a b"`` lines, in rank order)."""
    lines = gzip.decompress(bpe_gz).decode("utf-8").split("\n")
    merges = lines[1 : N_MERGES + 1]  # line 0 is a version header
    chars = bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != 49408:
        raise SystemExit(f"expected 49408 tokens, got {len(vocab)}")
    return vocab, merges


def _gzip(data: str) -> bytes:
    buf = io.BytesIO()
    # mtime=0 keeps the output byte-identical between runs
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as f:
        f.write(data.encode("utf-8"))
    return buf.getvalue()


def main(argv: list[str] | None = None) -> None:
    """Write ``clip_bpe/vocab.json.gz`` and ``clip_bpe/merges.txt.gz`` and check known ids."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source", type=Path, help="open_clip wheel or bpe_simple_vocab_16e6.txt.gz"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    vocab, merges = build(read_bpe_source(args.source))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vocab.json.gz").write_bytes(_gzip(json.dumps(vocab, ensure_ascii=False)))
    (args.out / "merges.txt.gz").write_bytes(_gzip("#version: 0.2\n" + "\n".join(merges) + "\n"))

    from transformers import CLIPTokenizer

    tok = CLIPTokenizer(vocab=vocab, merges=[tuple(m.split()) for m in merges])
    for text, ids in EXPECTED.items():
        got = tok(text).input_ids
        if got != ids:
            raise SystemExit(f"tokenizer check failed for {text!r}: {got} != {ids}")
    print(f"wrote {args.out} ({len(vocab)} tokens, {len(merges)} merges); ids check out")


if __name__ == "__main__":
    main()
