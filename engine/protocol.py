"""The wire protocol between the Sfumato app and its engine.

One source of truth for requests, job states and events, shared by both processes. This module
imports pydantic and the standard library only: the GUI imports it without pulling in torch.

HTTP (every request carries ``Authorization: Bearer <token>``; ``/v1`` prefix):

- ``GET  /v1/health``                      → :class:`Health`
- ``GET  /v1/models``                      → ``list[ModelInfo]``
- ``POST /v1/models/load``   :class:`LoadModelRequest` → :class:`ModelInfo`
- ``POST /v1/models/unload``               → :class:`Health`
- ``GET  /v1/samplers``                    → ``list[SamplerInfo]``
- ``POST /v1/jobs``          :class:`JobSubmit` → :class:`Job`
- ``GET  /v1/jobs``                        → ``list[Job]`` (queue order, then newest finished)
- ``GET  /v1/jobs/{id}``                   → :class:`Job`
- ``DELETE /v1/jobs/{id}``                 → :class:`Job` (cancel; queued jobs never start,
  the running job stops within one step)
- ``POST /v1/jobs/{id}/move`` :class:`MoveJob` → ``list[Job]`` (reorder the queue)
- ``GET  /v1/jobs/{id}/files/{name}``      → the file's bytes (PNG with its recipe)
- ``WS   /v1/events?token=…``              → a stream of :data:`Event` JSON messages

Errors answer 4xx with :class:`ErrorBody` so that a client can show the message next to the
offending field.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

API_VERSION = "v1"
MAX_SIDE = 4096
MAX_SEED = 2**32 - 1
TOKEN_HEADER = "Authorization"


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- generation


class GenerateParams(_Model):
    """Everything a text-to-image generation needs: the recipe saved with every image."""

    model: str | None = Field(None, description="Model id from /v1/models; None = the loaded one")
    prompt: str = ""
    negative_prompt: str = ""
    seed: int = Field(-1, ge=-1, le=MAX_SEED, description="-1 picks a random seed")
    width: int = 512
    height: int = 512
    steps: int = Field(25, description="Denoising steps, 1..1000")
    cfg_scale: float = Field(7.0, ge=0.0, le=100.0)
    sampler: str = "Euler a"
    batch_size: int = Field(1, ge=1, le=16)
    batch_count: int = Field(1, ge=1, le=100)

    @field_validator("width", "height")
    @classmethod
    def _side(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("must be a positive number of pixels")
        if v > MAX_SIDE:
            raise ValueError(f"must be at most {MAX_SIDE} pixels")
        if v % 8:
            lo, hi = v - v % 8, v - v % 8 + 8
            raise ValueError(f"must be a multiple of 8 (try {lo or hi} or {hi})")
        return v

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("must be at least 1")
        if v > 1000:
            raise ValueError("must be at most 1000")
        return v

    def with_seed(self, seed: int) -> GenerateParams:
        return self.model_copy(update={"seed": seed})

    # A1111's "parameters" text: what other tools write into a PNG and read back.
    def to_a1111(self, *, model_name: str | None = None, seed: int | None = None) -> str:
        pairs = [
            ("Steps", self.steps),
            ("Sampler", self.sampler),
            ("CFG scale", _num(self.cfg_scale)),
            ("Seed", self.seed if seed is None else seed),
            ("Size", f"{self.width}x{self.height}"),
        ]
        if model_name or self.model:
            pairs.append(("Model", model_name or self.model))
        if self.batch_size > 1:
            pairs.append(("Batch size", self.batch_size))
        text = self.prompt
        if self.negative_prompt:
            text += f"\nNegative prompt: {self.negative_prompt}"
        return text + "\n" + ", ".join(f"{k}: {_quote(v)}" for k, v in pairs)

    @classmethod
    def from_a1111(cls, text: str) -> GenerateParams:
        """Parse A1111's ``parameters`` text; unknown keys are ignored, bad values raise."""
        lines = text.strip().split("\n")
        settings_line = lines[-1] if lines and _A1111_KV.search(lines[-1]) else ""
        body = lines[:-1] if settings_line else lines
        prompt, negative, in_negative = [], [], False
        for line in body:
            if line.startswith("Negative prompt:"):
                in_negative = True
                line = line[len("Negative prompt:") :].strip()
            (negative if in_negative else prompt).append(line)
        kv = {k: _unquote(v) for k, v in _A1111_KV.findall(settings_line)}
        data: dict[str, Any] = {"prompt": "\n".join(prompt), "negative_prompt": "\n".join(negative)}
        if "Steps" in kv:
            data["steps"] = int(kv["Steps"])
        if "Sampler" in kv:
            sampler = kv["Sampler"]
            # Newer A1111 writes the schedule separately: "Sampler: DPM++ 2M, Schedule type: Karras".
            if kv.get("Schedule type", "Automatic") not in ("Automatic", ""):
                sampler = f"{sampler} {kv['Schedule type']}"
            data["sampler"] = sampler
        if "CFG scale" in kv:
            data["cfg_scale"] = float(kv["CFG scale"])
        if "Seed" in kv:
            data["seed"] = int(kv["Seed"])
        if "Size" in kv:
            w, h = kv["Size"].lower().split("x")
            data["width"], data["height"] = int(w), int(h)
        if "Model" in kv:
            data["model"] = kv["Model"]
        if "Batch size" in kv:
            data["batch_size"] = int(kv["Batch size"])
        return cls(**data)


_A1111_KV = re.compile(r'\s*([\w ()/+-]+):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def _quote(v: object) -> str:
    s = str(v)
    return json.dumps(s) if ("," in s or ":" in s or '"' in s) else s


def _unquote(v: str) -> str:
    v = v.strip()
    return json.loads(v) if v.startswith('"') else v


# --------------------------------------------------------------------------- jobs


class JobState(str, Enum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.done, JobState.failed, JobState.cancelled)


class GenerateJob(_Model):
    kind: Literal["generate"] = "generate"
    params: GenerateParams = Field(default_factory=GenerateParams)


JobSpec = Annotated[GenerateJob, Field(discriminator="kind")]


class JobSubmit(_Model):
    job: JobSpec
    priority: int = Field(0, description="Higher runs first; FIFO within a priority")


class ResultImage(_Model):
    name: str = Field(description="File name under the job: GET /v1/jobs/{id}/files/{name}")
    path: str = Field(description="Absolute path on the engine's machine")
    index: int = Field(description="0-based index within the job")
    seed: int
    width: int
    height: int


class Job(_Model):
    id: str
    kind: str
    state: JobState
    spec: JobSpec
    priority: int = 0
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    step: int = 0
    total: int = 0
    message: str = ""
    results: list[ResultImage] = []


class MoveJob(_Model):
    position: int = Field(ge=0, description="New 0-based position among the queued jobs")


# --------------------------------------------------------------------------- models & engine


class ModelInfo(_Model):
    id: str
    name: str
    format: Literal["diffusers", "single_file"]
    path: str
    architecture: str = "sd1"
    embedded: bool = False
    loaded: bool = False
    size_bytes: int = 0
    problem: str = Field("", description="Why this file cannot be loaded, if it cannot")


class LoadModelRequest(_Model):
    id: str | None = None
    path: str | None = Field(None, description="A diffusers folder or .safetensors file on disk")


class SamplerInfo(_Model):
    name: str
    description: str


class EngineState(str, Enum):
    starting = "starting"
    loading = "loading"
    ready = "ready"
    busy = "busy"


class Health(_Model):
    api: str = API_VERSION
    version: str
    state: EngineState
    device: str
    dtype: str
    model: str | None = None
    memory_used: int = Field(0, description="Bytes held by the loaded model (VRAM on GPU)")
    memory_total: int = 0
    memory_peak: int = Field(0, description="Peak bytes allocated on the GPU since the model loaded")
    queued: int = 0
    torch: str = ""
    diffusers: str = ""


class ErrorBody(_Model):
    """A 4xx answer: ``message`` reads well on its own; ``field`` is a dotted path if any."""

    message: str
    field: str | None = None
    errors: list[dict[str, str]] = []


# --------------------------------------------------------------------------- events


class _Event(_Model):
    at: datetime = Field(default_factory=utcnow)


class JobQueued(_Event):
    type: Literal["queued"] = "queued"
    job: Job


class JobStarted(_Event):
    type: Literal["started"] = "started"
    job_id: str


class JobProgress(_Event):
    type: Literal["progress"] = "progress"
    job_id: str
    step: int
    total: int
    eta_s: float | None = None
    stage: str = "sampling"


class JobPreview(_Event):
    type: Literal["preview"] = "preview"
    job_id: str
    step: int
    index: int = 0
    width: int
    height: int
    png_b64: str = Field(description="A small PNG of the current latent, base64")


class JobResult(_Event):
    type: Literal["result"] = "result"
    job_id: str
    image: ResultImage


class JobFinished(_Event):
    """The job left the queue: done, failed (``message`` says why and what to do) or cancelled."""

    type: Literal["finished"] = "finished"
    job: Job


class QueueChanged(_Event):
    type: Literal["queue"] = "queue"
    order: list[str] = Field(description="Ids of queued jobs, next first")


class EngineStatus(_Event):
    type: Literal["engine"] = "engine"
    health: Health


Event = Annotated[
    JobQueued | JobStarted | JobProgress | JobPreview | JobResult | JobFinished | QueueChanged | EngineStatus,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(data: str | bytes) -> Event:
    return EVENT_ADAPTER.validate_json(data)


# --------------------------------------------------------------------------- recipes in PNGs

PNG_PARAMETERS_KEY = "parameters"  # A1111's text chunk
PNG_RECIPE_KEY = "sfumato"  # our JSON chunk: {"version": 1, "kind": ..., "params": {...}, ...}


def recipe_json(params: GenerateParams, *, seed: int, model_name: str | None, index: int) -> str:
    return json.dumps(
        {
            "version": 1,
            "kind": "generate",
            "params": params.with_seed(seed).model_dump(mode="json"),
            "model_name": model_name,
            "index": index,
        }
    )


def recipe_from_png_text(text: dict[str, str]) -> GenerateParams | None:
    """The recipe in a PNG's text chunks: ours if present, else A1111's; None if neither."""
    if PNG_RECIPE_KEY in text:
        data = json.loads(text[PNG_RECIPE_KEY])
        return GenerateParams.model_validate(data["params"])
    if PNG_PARAMETERS_KEY in text:
        return GenerateParams.from_a1111(text[PNG_PARAMETERS_KEY])
    return None
