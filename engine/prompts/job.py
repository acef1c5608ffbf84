"""A job's prompts: LoRAs applied for its duration, embeddings found, conditioning encoded.

    with PromptSession(loaded, folders, [p.prompt, p.negative_prompt]) as prompts:
        conditioning = prompts.encode(p.prompt, p.negative_prompt, cfg, steps, clip_skip)
        ...
    # the LoRAs are gone again: the next job sees the base model bit for bit

``<lora:…>`` tags are taken out of the text first (A1111 does the same); what the session used
goes into the saved recipe as A1111's ``Lora hashes`` and ``TI hashes``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Self

from engine.architecture import FLOW_ARCHITECTURES, Architecture
from engine.errors import EngineError
from engine.fast_path import owner
from engine.prompts import embeddings as ti
from engine.prompts import lora_slots, loras
from engine.prompts.encode import (
    PipeConditioning,
    encode_flow,
    encode_for_pipe,
    is_flow_pipe,
    text_encoders,
)
from engine.prompts.lora_slots import JobLoras
from engine.prompts.parser import NetworkTag, extract_networks

log = logging.getLogger(__name__)


def network_tags(*texts: str) -> list[NetworkTag]:
    """Every ``<lora:…>``/``<lyco:…>`` tag in the texts (other kinds are A1111 extensions we
    do not have: refused by name)."""
    tags = []
    for text in texts:
        try:
            _, found = extract_networks(text)
        except ValueError as exc:
            raise EngineError(str(exc), "params.prompt") from None
        for tag in found:
            if tag.kind not in ("lora", "lyco"):
                raise EngineError(
                    f"{tag.text}: Sfumato knows <lora:…> and <lyco:…> tags, not <{tag.kind}:…>",
                    "params.prompt",
                )
            tags.append(tag)
    return tags


def context_dim_of(info) -> int:
    """The width of the text conditioning a model's UNet takes, from its files."""
    import json

    path = Path(info.path)
    if path.is_dir():
        try:
            return int(
                json.loads((path / "unet" / "config.json").read_text()).get("cross_attention_dim")
                or 0
            )
        except (OSError, ValueError, TypeError):
            return 0
    return Architecture.parse(info.architecture).facts.context_dim


def check_prompts(texts: list[str], info, folders) -> None:
    """At submit: refuse tags that are malformed, LoRAs that are missing or made for another
    base. (Embeddings are checked against the loaded encoders when the job runs.)"""
    tags = network_tags(*texts)
    if tags and info.architecture in FLOW_ARCHITECTURES:
        raise EngineError(
            f"{tags[0].text}: LoRAs are not supported for {info.architecture} "
            "models yet (docs/flow-models.md)",
            "params.prompt",
        )
    if tags:
        loras.check(tags, loras.scan(folders), context_dim_of(info), info.name)


class PromptSession:
    def __init__(self, loaded, folders, texts: list[str]) -> None:
        self.loaded = loaded
        self.folders = list(folders)
        self.tags = network_tags(*texts)
        self.embeddings = ti.EmbeddingLibrary(ti.scan(self.folders))
        self.lora_files: dict[str, loras.LoraFile] = {}
        self._applied = False
        self._fast_loras: JobLoras | None = None

    def __enter__(self) -> Self:
        if self.tags and is_flow_pipe(self.loaded.pipe):
            raise EngineError(
                f"{self.tags[0].text}: LoRAs are not supported for "
                f"{self.loaded.info.architecture} models yet (docs/flow-models.md)",
                "params.prompt",
            )
        if self.tags:
            available = loras.scan(self.folders)
            info = self.loaded.info
            loras.check(self.tags, available, context_dim_of(info), info.name)
            fast = owner(self.loaded.pipe)
            if fast is not None:  # a compiled UNet: resident slots, no recompile per LoRA
                self._fast_loras = JobLoras(fast, self.loaded.pipe, self.tags, available)
                self._fast_loras.apply()
            else:
                loras.apply(self.loaded.pipe, self.tags, available)
            self._applied = True
            self.lora_files = {t.name: available[t.name] for t in self.tags}
        elif (fast := owner(self.loaded.pipe)) is not None:
            lora_slots.rest(self.loaded.pipe, fast)  # no LoRA: the slots out of the way
        return self

    def __exit__(self, *exc) -> None:
        if self._applied:
            if self._fast_loras is not None:
                self._fast_loras.remove()
                self._fast_loras = None
            else:
                loras.remove(self.loaded.pipe)
            self._applied = False

    def encode(
        self,
        prompt: str,
        negative_prompt: str,
        guidance_scale: float,
        steps: int,
        clip_skip: int = 1,
    ) -> PipeConditioning:
        pipe = self.loaded.pipe
        prompt, _ = extract_networks(prompt)
        negative_prompt, _ = extract_networks(negative_prompt)
        if is_flow_pipe(pipe):  # SD3/Flux: CLIP + T5 through the pipeline's encoders
            return encode_flow(pipe, prompt, negative_prompt, guidance_scale, self.loaded.device)
        self.embeddings.prepare([prompt, negative_prompt], text_encoders(pipe, clip_skip))
        return encode_for_pipe(
            pipe,
            prompt,
            negative_prompt,
            guidance_scale,
            self.loaded.device,
            steps=steps,
            clip_skip=clip_skip,
            embeddings=self.embeddings,
        )

    def recipe_update(self) -> dict[str, str]:
        """A1111's ``Lora hashes``/``TI hashes`` of what this session used, for the recipe."""
        out = {}
        if self.lora_files:
            out["lora_hashes"] = ", ".join(
                f"{name}: {loras.shorthash(f.path)}" for name, f in self.lora_files.items()
            )
        if self.embeddings.used:
            out["ti_hashes"] = self.embeddings.hashes()
        return out
