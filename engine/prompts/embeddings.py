"""Textual-inversion embeddings, used by name in the prompt, A1111's way.

An embedding is a ``.safetensors`` file in a models folder's ``embeddings/``; its file name (without
the suffix) is the word that calls it. Where that word's tokens appear in a prompt, its vectors
replace them at the input of the text encoder (a forward hook on the token embedding, removed
after the call: the encoder's weights are never touched). It carries the weight of the text
around it, and its vectors never straddle two 75-token chunks.

Layouts read: A1111's ``emb_params`` (vectors × width), SDXL's ``clip_l`` + ``clip_g``, and the
diffusers training script's single ``{token: vectors}``. A1111's ``.pt`` files are pickles and
are refused, like every pickle in Sfumato.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import EngineError

EMBEDDING_FOLDERS = ("embeddings",)


@dataclass
class Embedding:
    name: str
    path: Path
    tensors: dict  # encoder key ("clip_l", "clip_g", or "" for a one-encoder file) → (n, width)

    @property
    def vectors(self) -> int:
        return int(next(iter(self.tensors.values())).shape[0])

    def vectors_for(self, key: str):
        return self.tensors[key] if key in self.tensors else self.tensors[""]

    def fits(self, key: str, width: int) -> bool:
        t = self.tensors.get(key, self.tensors.get("") if key == "clip_l" else None)
        return t is not None and int(t.shape[-1]) == width

    @property
    def shorthash(self) -> str:
        """A1111's TI hash: SHA-256 of the file, 12 hex digits."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:12]


def embedding_dirs(model_folders) -> list[Path]:
    return [f / sub for f in model_folders for sub in EMBEDDING_FOLDERS if (f / sub).is_dir()]


def load_embedding(path: Path) -> Embedding:
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several kinds on bad files
        raise EngineError(f"Embedding {path.name} is not a readable .safetensors ({exc})") from None
    if "emb_params" in state:
        tensors = {"": state["emb_params"]}
    elif "clip_l" in state or "clip_g" in state:
        tensors = {k: state[k] for k in ("clip_l", "clip_g") if k in state}
    elif len(state) == 1:
        tensors = {"": next(iter(state.values()))}
    else:
        raise EngineError(
            f"Embedding {path.name} has none of the known layouts (emb_params, "
            "clip_l/clip_g, or one token's vectors)"
        )
    tensors = {k: (t.unsqueeze(0) if t.ndim == 1 else t).float() for k, t in tensors.items()}
    return Embedding(path.stem, path, tensors)


def scan(model_folders) -> dict[str, Path]:
    """name → file of every embedding in the folders; pickles are listed as refused below."""
    found: dict[str, Path] = {}
    for folder in embedding_dirs(model_folders):
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in (".safetensors", ".pt", ".bin"):
                found.setdefault(path.stem, path)
    return found


@dataclass
class EmbeddingLibrary:
    """The embeddings a prompt may call, and which ones the last encodes used."""

    files: dict[str, Path]
    loaded: dict[str, Embedding] = field(default_factory=dict)
    used: dict[str, Embedding] = field(default_factory=dict)

    def named_in(self, *texts: str) -> list[str]:
        """The embeddings whose name appears as a word in the texts."""
        return [
            n
            for n in self.files
            if any(re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", t) for t in texts)
        ]

    def prepare(self, texts: list[str], encoders) -> None:
        """Load the embeddings the texts call; refuse pickles and ones made for another model."""
        for name in self.named_in(*texts):
            path = self.files[name]
            if path.suffix.lower() != ".safetensors":
                raise EngineError(
                    f"Embedding '{name}' ({path.name}) is a pickle, which Sfumato never loads "
                    "(it can run code); use its .safetensors version.",
                    "params.prompt",
                )
            emb = self.loaded.get(name) or load_embedding(path)
            for enc in encoders:
                width = enc.model.get_input_embeddings().weight.shape[1]
                if not emb.fits(enc.key, width):
                    have = ", ".join(
                        f"{k or 'vectors'} {tuple(t.shape)}" for k, t in emb.tensors.items()
                    )
                    raise EngineError(
                        f"Embedding '{name}' does not fit this model's {enc.key} text encoder "
                        f"(width {width}; the file has {have}): it was made for another base.",
                        "params.prompt",
                    )
            self.loaded[name] = emb

    def lookup(self, encoder):
        """For :func:`chunking.chunk_tokens`: the embedding whose name's tokens start here."""
        table: dict[int, list[tuple[list[int], Embedding]]] = {}
        for name, emb in self.loaded.items():
            ids = encoder.tokenizer([name], add_special_tokens=False)["input_ids"][0]
            if ids:
                table.setdefault(ids[0], []).append((ids, emb))
        for entries in table.values():
            entries.sort(key=lambda e: -len(e[0]))

        def find(tokens, position):
            for ids, emb in table.get(tokens[position], ()):
                if list(tokens[position : position + len(ids)]) == ids:
                    self.used[emb.name] = emb
                    return emb, len(ids)
            return None, 0

        return find

    def hashes(self) -> str:
        """A1111's ``TI hashes``: 'name: hash, …' of the embeddings used."""
        return ", ".join(
            f"{n.replace(':', '').replace(',', '')}: {e.shorthash}"
            for n, e in sorted(self.used.items())
        )
