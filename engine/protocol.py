"""The wire protocol between the Sfumato app and its engine.

One source of truth for requests, job states and events, shared by both processes. This module
imports pydantic and the standard library only: the GUI imports it without pulling in torch.

HTTP (every request carries ``Authorization: Bearer <token>``; ``/v1`` prefix):

- ``GET  /v1/health``                      → :class:`Health`
- ``GET  /v1/models``                      → ``list[ModelInfo]``
- ``POST /v1/models/load``   :class:`LoadModelRequest` → :class:`ModelInfo`
- ``POST /v1/models/unload``               → :class:`Health`
- ``GET  /v1/samplers``                    → ``list[SamplerInfo]`` (with each sampler's options)
- ``GET  /v1/fits?model=…``                → ``list[FitInfo]`` (Analytic-DPM Γ_t, calibration and
  uncertainty fits)
- ``POST /v1/jobs``          :class:`JobSubmit` → :class:`Job`
- ``GET  /v1/jobs``                        → ``list[Job]`` (queue order, then newest finished)
- ``GET  /v1/jobs/{id}``                   → :class:`Job`
- ``DELETE /v1/jobs/{id}``                 → :class:`Job` (cancel; queued jobs never start,
  the running job stops within one step)
- ``POST /v1/jobs/{id}/move`` :class:`MoveJob` → ``list[Job]`` (reorder the queue)
- ``GET  /v1/jobs/{id}/files/{name}``      → the file's bytes (PNG with its recipe)
- ``WS   /v1/events?token=…``              → a stream of :data:`Event` JSON messages
- ``POST /v1/uploads?name=…``  raw bytes   → :class:`UploadInfo`; ``GET /v1/uploads[/{id}]``
- ``POST /v1/video/control_preview`` :class:`ControlPreviewRequest` → :class:`ControlPreview`
  (video models live in :mod:`engine.video_protocol`, re-exported here; see docs/video.md)

Errors answer 4xx with :class:`ErrorBody` so that a client can show the message next to the
offending field.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from engine.architecture import (  # noqa: F401  (re-exported: the app imports them from here)
    FLOW_ARCHITECTURES,
    Architecture,
    Family,
    Method,
)
from engine.robustness_protocol import (  # noqa: F401  (re-exported: the app imports them from here)
    RULES,
    Perturbation,
    PromptWord,
    RobustnessGroup,
    RobustnessReport,
    WordImportance,
    planned_groups,
    replace_word,
    split_words,
)
from engine.video_protocol import (  # noqa: F401  (re-exported: the app imports them from here)
    MAX_UPLOAD_BYTES,
    ControlPreview,
    ControlPreviewRequest,
    ControlSpec,
    FrameRange,
    LoveconFusion,
    UploadInfo,
    VideoEditJob,
    VideoEditParams,
    VideoProbe,
    VideoResult,
)

API_VERSION = "v1"
MAX_SIDE = 4096
MAX_SEED = 2**32 - 1
TOKEN_HEADER = "Authorization"


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- generation

#: Sigma schedules: Sfumato id → A1111's "Schedule type" label.
SCHEDULES: dict[str, str] = {
    "default": "Automatic",
    "karras": "Karras",
    "exponential": "Exponential",
    "beta": "Beta",
}
#: Lower-case A1111 labels (and our ids) → schedule id. A1111 schedules Sfumato does not have
#: (Polyexponential, Align Your Steps, KL Optimal, ...) read as the sampler's default.
SCHEDULE_IDS: dict[str, str] = {
    **{k: k for k in SCHEDULES},
    **{v.lower(): k for k, v in SCHEDULES.items()},
    "uniform": "default",
    "normal": "default",
    "simple": "default",
    "ddim": "default",
    "sgm uniform": "default",
}
A1111_SPACING_SCHEDULES = {"sgm uniform": "trailing"}
TIMESTEP_SPACINGS = ("linspace", "leading", "trailing")
#: Analytic-DPM's optimal trajectory (Bao et al. 2022, §4): a spacing for its samplers only.
OPTIMAL_SPACING = "optimal"


class UncertaintyOptions(_Model):
    """BayesDiff (docs/uncertainty.md): needs an uncertainty_fit of the model and a sampler
    with SamplerInfo.uncertainty (DDIM, DPM2)."""

    map: bool = Field(True, description="Per-pixel uncertainty map and score of each image")
    samples: int = Field(
        5, ge=1, le=64, description="S: Monte-Carlo samples of x_t batched into one UNet call"
    )
    skip: int = Field(5, ge=1, le=100, description="k: full variance propagation every k-th step")
    decodes: int = Field(
        8, ge=1, le=64, description="M: latent samples decoded in one VAE batch for the map"
    )
    score: Literal["latent", "pixel"] = Field(
        "latent",
        description="The score that ranks images: latent = the sum of Var[x₀] over the "
        "latent (BayesDiff's official); pixel = the mean per-pixel variance of the M decodes",
    )
    variation_step: int | None = Field(
        None,
        ge=0,
        description="Variations from here: re-run this recipe (same seed) with "
        "uncertainty to this step t, draw each of batch_size images' x_t from "
        "N(E[x_t], Var[x_t]) with variation_seed, then finish sampling",
    )
    variation_seed: int = Field(
        -1, ge=-1, le=MAX_SEED, description="Seed of the x_t draws; -1 picks a random one"
    )


#: Recipe v1's flat names of the uncertainty options → the group's (the app's form and old
#: API clients still use the flat ones; ``uncertainty`` itself was the map's on/off).
FLAT_UNCERTAINTY: dict[str, str] = {
    "uncertainty_samples": "samples",
    "uncertainty_skip": "skip",
    "uncertainty_decodes": "decodes",
    "uncertainty_score": "score",
    "variation_step": "variation_step",
    "variation_seed": "variation_seed",
}


def fold_flat_uncertainty(data: dict[str, Any]) -> dict[str, Any]:
    """v1's flat uncertainty fields → the ``uncertainty`` group (None when neither the map nor
    variations are asked for); anything else is left as it is."""
    flat = {k: data[k] for k in FLAT_UNCERTAINTY if k in data}
    on = data.get("uncertainty")
    if not flat and not isinstance(on, bool):
        return data
    data = {k: v for k, v in data.items() if k not in FLAT_UNCERTAINTY}
    group = dict(on) if isinstance(on, dict) else {}
    group.update({FLAT_UNCERTAINTY[k]: v for k, v in flat.items()})
    if isinstance(on, bool) or on is None:
        group["map"] = bool(on)
    wanted = group.get("map") or group.get("variation_step") is not None
    data["uncertainty"] = group if wanted else None
    return data


def flat_uncertainty(params: GenerateParams) -> dict[str, Any]:
    """The group as v1's flat fields (what the app's form edits); {} when it is off."""
    u = params.uncertainty
    if u is None:
        return {}
    return {"uncertainty": u.map, **{k: getattr(u, g) for k, g in FLAT_UNCERTAINTY.items()}}


def form_values(params: GenerateParams) -> dict[str, Any]:
    """The recipe as one flat dict, groups as their v1 flat fields: what a form edits (the
    app's generation settings). ``GenerateParams(**form_values(p)) == p``."""
    data = params.model_dump()
    data.pop("uncertainty")
    defaults = {k: getattr(UncertaintyOptions(), g) for k, g in FLAT_UNCERTAINTY.items()}
    return {**data, "uncertainty": False, **defaults, **flat_uncertainty(params)}


def form_fields() -> set[str]:
    """The names :func:`form_values` uses (and ``GenerateParams`` accepts)."""
    return set(GenerateParams.model_fields) | set(FLAT_UNCERTAINTY)


def sampler_for_family(name: str, family: str) -> str:
    """The sampler doing what ``name`` does on a model of ``family`` ("flow"/"diffusion"):
    Forge's "Euler" on Flux is "Flow Euler" (the table is engine/a1111.py's ``sampler_for``)."""
    from engine import a1111

    return a1111.sampler_for(name, family)


class FlowOptions(_Model):
    """Options of rectified-flow models (SD3/SD3.5, Flux; docs/flow-models.md)."""

    guidance: float | None = Field(
        None,
        ge=0.0,
        le=100.0,
        description="Forge's 'Distilled CFG Scale': Flux's guidance "
        "embedding (dev; schnell ignores it). None = 3.5. SD3 has none: its CFG is cfg_scale",
    )
    shift: float | None = Field(
        None,
        gt=0.0,
        le=100.0,
        description="Timestep shift s of the flow schedule, "
        "σ' = s·σ/(1 + (s−1)·σ). None = the model's (SD3: 3; Flux: by resolution)",
    )


class GenerateParams(_Model):
    """Everything a text-to-image generation needs: the recipe saved with every image.

    A1111's flat core (prompt, size, steps, CFG, sampler and its options), then optional
    groups, one per feature, None when off: ``uncertainty`` (later ``init`` for img2img,
    ``flow`` for flow models). A new group is one model and one field here, a migration in
    :data:`RECIPE_MIGRATIONS` if it moves old fields, and rows in engine/a1111.py."""

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
    # Sampler options (SamplerInfo.options says which apply to a sampler). None = its default.
    schedule: str = Field("default", description="Sigma schedule: " + ", ".join(SCHEDULES))
    timestep_spacing: str | None = Field(
        None,
        description="linspace, leading or trailing; "
        "Analytic-DDPM/DDIM also: optimal (the trajectory of "
        "their analytic fit, Bao et al. §4)",
    )
    eta: float | None = Field(None, ge=0.0, le=1.0, description="η / stochasticity")
    solver_order: int | None = Field(None, ge=1, le=4)
    calibrated: bool = Field(False, description="Subtract the cached per-step mean of ε̂")
    calibration_mean: Literal["spatial", "channel"] = Field(
        "spatial",
        description="Calibration's mean: per element C×H×W (the official; at the fit's "
        "latent size, else per channel) or per channel",
    )
    # Optional groups: a feature's options travel together, None when it is off (recipe v2).
    uncertainty: UncertaintyOptions | None = Field(
        None, description="BayesDiff uncertainty map and/or variations; None = off"
    )
    flow: FlowOptions | None = Field(
        None,
        description="Flow-model options (Flux's distilled guidance, the shift); None = "
        "the model's defaults. Refused for SD models",
    )

    @model_validator(mode="before")
    @classmethod
    def _flat_v1_fields(cls, data: Any) -> Any:
        """Recipe v1 and older API clients wrote the uncertainty options flat
        (``uncertainty: true, uncertainty_samples: 5, variation_step: …``): fold them into the
        group, so every old PNG and script still works."""
        return fold_flat_uncertainty(data) if isinstance(data, dict) else data

    # The prompt language (docs/prompts.md). LoRAs and embeddings are named in the prompt.
    clip_skip: int = Field(
        1,
        ge=1,
        le=12,
        description="A1111's Clip skip: condition on the "
        "n-th from last CLIP layer (SD 1.x; SD 2.x and SDXL ignore it)",
    )
    lora_hashes: str = Field(
        "",
        description="A1111's 'Lora hashes' ('name: hash, …') of the "
        "LoRAs the prompt used; written by the engine into the recipe",
    )
    ti_hashes: str = Field(
        "",
        description="A1111's 'TI hashes' of the embeddings used; "
        "written by the engine into the recipe",
    )

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        v = SCHEDULE_IDS.get(v.strip().lower(), v)
        if v not in SCHEDULES:
            raise ValueError(f"unknown schedule {v!r}; choose one of: {', '.join(SCHEDULES)}")
        return v

    @field_validator("timestep_spacing")
    @classmethod
    def _spacing(cls, v: str | None) -> str | None:
        if v is not None and v not in (*TIMESTEP_SPACINGS, OPTIMAL_SPACING):
            raise ValueError(
                f"must be one of: {', '.join(TIMESTEP_SPACINGS)} (or "
                f"{OPTIMAL_SPACING} for Analytic-DDPM/DDIM)"
            )
        return v

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

    # A1111's "parameters" text: what other tools write into a PNG and read back. The keys
    # live in one table, engine/a1111.py (ROWS): a new key is a new row there.
    def to_a1111(self, *, model_name: str | None = None, seed: int | None = None) -> str:
        from engine import a1111

        return a1111.write(self, model_name=model_name, seed=seed)

    @classmethod
    def from_a1111(cls, text: str) -> GenerateParams:
        """Parse A1111's ``parameters`` text (engine/a1111.py): unknown keys are ignored and
        out-of-range values adjusted; :func:`engine.a1111.parse` also says what was."""
        from engine import a1111

        return a1111.parse(text).params


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


class FitData(_Model):
    """Where a fit's x₀ come from: the model's shipped fit set, a folder of images, or samples
    the model generates itself (``prompts`` cycled; empty = unconditional)."""

    source: Literal["fitset", "folder", "generated"] = "fitset"
    folder: str | None = Field(
        None,
        description="Images (png/jpg/webp) for source='folder'; "
        "captions from a same-named .txt next to each image if present",
    )
    count: int = Field(256, ge=8, le=10_000, description="How many images (x₀) to use")
    prompts: list[str] = Field(default_factory=list, description="For source='generated'")
    steps: int = Field(25, ge=1, le=1000, description="Sampling steps for source='generated'")


class AnalyticFitParams(_Model):
    """Estimate Analytic-DPM's Γ_t = E‖ε̂(x_t, t)‖²/d on the timestep grids of these step
    counts (Bao et al. 2022, §3), cached per model and grid."""

    model: str | None = None
    steps: list[int] = Field(default_factory=lambda: [10, 25, 50, 100])
    timestep_spacing: str | None = None
    data: FitData = Field(default_factory=FitData)
    samples_per_step: int | None = Field(
        None, ge=1, description="Noised images per timestep (default: data.count)"
    )
    seed: int = Field(0, ge=0, le=MAX_SEED)
    cfg_scale: float = Field(
        1.0,
        ge=1.0,
        le=100.0,
        description="Γ of the guided ε̂ at this "
        "scale (1 = the conditional ε̂, the default; docs/samplers.md "
        "measures whether a guided fit helps guided sampling)",
    )


class CalibrationFitParams(_Model):
    """Estimate the per-step mean of ε̂ (Pang et al. 2023) on a dense timestep grid, cached per
    model; any sampler and step count interpolates it."""

    model: str | None = None
    timesteps: int = Field(100, ge=2, le=1000, description="Grid points over the training range")
    data: FitData = Field(default_factory=FitData)
    seed: int = Field(0, ge=0, le=MAX_SEED)


class UncertaintyFitParams(_Model):
    """Fit BayesDiff's last-layer Laplace posterior (Kou et al. 2024, §3.1): a diagonal Gaussian
    over the UNet's ``conv_out`` weights and bias, precision = prior_precision + GGN / noise,
    the GGN summed over the fit set's images at random timesteps. Cached per model."""

    model: str | None = None
    data: FitData = Field(default_factory=FitData)
    prior_precision: float = Field(1.0, gt=0.0, description="λ of the N(0, 1/λ) weight prior")
    noise: float = Field(1.0, gt=0.0, description="σ², the observation noise of ε")
    seed: int = Field(0, ge=0, le=MAX_SEED)


class AnalyticFitJob(_Model):
    kind: Literal["analytic_fit"] = "analytic_fit"
    params: AnalyticFitParams = Field(default_factory=AnalyticFitParams)


class CalibrationFitJob(_Model):
    kind: Literal["calibration_fit"] = "calibration_fit"
    params: CalibrationFitParams = Field(default_factory=CalibrationFitParams)


class GridSampler(_Model):
    """One row of a sampler grid: a sampler and the options that differ from the base recipe."""

    sampler: str
    schedule: str | None = None
    timestep_spacing: str | None = None
    eta: float | None = Field(None, ge=0.0, le=1.0)
    solver_order: int | None = Field(None, ge=1, le=4)
    calibrated: bool | None = None

    def label(self) -> str:
        parts = [self.sampler]
        if self.schedule and self.schedule != "default":
            parts.append(SCHEDULES.get(self.schedule, self.schedule))
        if self.eta is not None:
            parts.append(f"η {self.eta:g}")
        if self.solver_order is not None:
            parts.append(f"order {self.solver_order}")
        if self.timestep_spacing:
            parts.append(self.timestep_spacing)
        if self.calibrated:
            parts.append("calibrated")
        return " · ".join(parts)


class SamplerGridParams(_Model):
    """One prompt and seed across samplers × step counts (× CFG values): rows are samplers
    (then CFG values), columns step counts."""

    base: GenerateParams = Field(
        default_factory=GenerateParams,
        description="Prompt, seed, size, model and default options; its sampler/steps are unused",
    )
    samplers: list[GridSampler | str] = Field(min_length=1, max_length=32)
    steps: list[int] = Field(min_length=1, max_length=16)
    cfg_scales: list[float] = Field(
        default_factory=list, max_length=8, description="Empty = the base recipe's CFG scale"
    )

    @field_validator("samplers")
    @classmethod
    def _samplers(cls, v: list[GridSampler | str]) -> list[GridSampler | str]:
        return [GridSampler(sampler=s) if isinstance(s, str) else s for s in v]

    @field_validator("steps")
    @classmethod
    def _grid_steps(cls, v: list[int]) -> list[int]:
        if any(s < 1 or s > 1000 for s in v):
            raise ValueError("every step count must be 1..1000")
        return v

    def rows(self) -> list[tuple[GridSampler, float]]:
        cfgs = self.cfg_scales or [self.base.cfg_scale]
        return [(s, c) for s in self.samplers for c in cfgs]  # type: ignore[misc]

    def cell_params(self, sampler: GridSampler, steps: int, cfg: float) -> GenerateParams:
        update: dict[str, Any] = {
            "sampler": sampler.sampler,
            "steps": steps,
            "cfg_scale": cfg,
            "batch_size": 1,
            "batch_count": 1,
        }
        for name in ("schedule", "timestep_spacing", "eta", "solver_order", "calibrated"):
            value = getattr(sampler, name)
            if value is not None:
                update[name] = value
        return GenerateParams.model_validate({**self.base.model_dump(), **update})


class SamplerGridJob(_Model):
    kind: Literal["sampler_grid"] = "sampler_grid"
    params: SamplerGridParams


class UncertaintyFitJob(_Model):
    kind: Literal["uncertainty_fit"] = "uncertainty_fit"
    params: UncertaintyFitParams = Field(default_factory=UncertaintyFitParams)


class RobustnessParams(_Model):
    """A ``prompt_robustness`` probe of ``base.prompt`` (docs/robustness.md, issue 22)."""

    base: GenerateParams = Field(description="The recipe probed; batch settings are ignored")
    samples: int = Field(8, ge=2, le=64, description="Images per prompt variant (shared seeds)")
    rules: list[Literal["typo", "glyph", "phonetic"]] = Field(
        default_factory=lambda: list(RULES), min_length=1, description="Perturbation rules"
    )
    top_k: int | None = Field(
        3, ge=1, le=64, description="Perturb the k most important words; None = every word"
    )
    permutations: int = Field(1000, ge=50, le=20000, description="Permutation-test draws")
    perturb_seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of the perturbations")

    @field_validator("rules")
    @classmethod
    def _unique_rules(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))

    def image_count(self) -> int:
        """Images the probe renders (at most: a rule with no variant for a word is skipped)."""
        return self.samples * planned_groups(
            len(split_words(self.base.prompt)), self.rules, self.top_k
        )


class RobustnessJob(_Model):
    kind: Literal["prompt_robustness"] = "prompt_robustness"
    params: RobustnessParams


JobSpec = Annotated[
    GenerateJob
    | AnalyticFitJob
    | CalibrationFitJob
    | SamplerGridJob
    | VideoEditJob
    | UncertaintyFitJob
    | RobustnessJob,
    Field(discriminator="kind"),
]


def kind_of(spec: type[BaseModel]) -> str:
    """A job spec class's ``kind`` tag, the name ``Job.kind`` carries:
    ``kind_of(GenerateJob) == "generate"``. Clients compare kinds with this, not with literals."""
    return spec.model_fields["kind"].default


#: Every job spec class, in :data:`JobSpec`'s order. engine/kinds.py has one row per class
#: (how the engine checks and runs it); tests/engine/test_kinds.py holds the two together.
JOB_SPECS: tuple[type[_Model], ...] = get_args(get_args(JobSpec)[0])
#: Every job kind's name.
JOB_KINDS: tuple[str, ...] = tuple(kind_of(spec) for spec in JOB_SPECS)
#: The jobs that fit a model's statistics, and the ``FitInfo.kind`` of the fit each makes.
FIT_JOB_KINDS: dict[str, str] = {
    kind_of(AnalyticFitJob): "analytic",
    kind_of(CalibrationFitJob): "calibration",
    kind_of(UncertaintyFitJob): "uncertainty",
}


class JobSubmit(_Model):
    job: JobSpec
    priority: int = Field(0, description="Higher runs first; FIFO within a priority")
    fast_path: bool | None = Field(
        None,
        description="Compiled UNet/VAE (engine/fast_path.py): false runs this job eager, "
        "true turns the fast path on (it warms up in the background; until then jobs run eager); "
        "null follows the engine (--fast-path: on with CUDA)",
    )


class GridCell(_Model):
    """Where a sampler-grid result sits and what it cost."""

    row: int
    col: int
    sampler: str
    label: str = Field(description="The row's label, e.g. 'DPM++ 2M · Karras'")
    steps: int
    cfg_scale: float
    seconds: float = Field(description="Wall time of this cell's sampling and decode")


class UncertaintyResult(_Model):
    """BayesDiff's pixel map of one image (Kou et al. 2024, §3.3).

    The map is the per-pixel variance of M decoded samples of x₀ ~ N(E[x₀], Var[x₀]), averaged
    over R, G, B, in the image's pixel units ([0, 1]², so at most 0.25). Two scores: ``latent``
    — the sum of Var[x₀] over the latent, what the official code ranks by — and ``pixel`` — the
    mean of the pixel map (the sum ÷ (H·W), comparable across sizes). ``score`` is the one the
    recipe's ``uncertainty.score`` chose."""

    map_name: str = Field(description="File under the job: a float32 .npy of shape (H, W)")
    score: float = Field(description="The chosen score: higher = less certain")
    score_kind: Literal["latent", "pixel"] = Field(
        "pixel", description="Which score ``score`` is (results from before both existed: pixel)"
    )
    latent_score: float | None = Field(None, description="Σ Var[x₀] over the latent")
    pixel_score: float | None = Field(None, description="Mean per-pixel variance of the decodes")
    map_min: float
    map_max: float


class ResultImage(_Model):
    name: str = Field(description="File name under the job: GET /v1/jobs/{id}/files/{name}")
    path: str = Field(description="Absolute path on the engine's machine")
    index: int = Field(description="0-based index within the job")
    seed: int
    width: int
    height: int
    role: Literal["image", "grid", "video"] = Field(
        "image", description="'grid': the assembled grid PNG; 'video': an MP4 (see ``video``)"
    )
    cell: GridCell | None = Field(None, description="Set on the cells of a sampler_grid job")
    video: VideoResult | None = Field(None, description="Set on a video_edit job's MP4")
    uncertainty: UncertaintyResult | None = Field(
        None, description="Set when the recipe asked for uncertainty"
    )


class Job(_Model):
    id: str
    kind: str
    state: JobState
    spec: JobSpec
    priority: int = 0
    fast_path: bool | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    step: int = 0
    total: int = 0
    message: str = ""
    results: list[ResultImage] = []
    fit: FitInfo | None = Field(None, description="What a finished *_fit job fitted")
    robustness: RobustnessReport | None = Field(
        None, description="A prompt_robustness job's report; it grows as groups finish"
    )


class MoveJob(_Model):
    position: int = Field(ge=0, description="New 0-based position among the queued jobs")


# --------------------------------------------------------------------------- models & engine


class PromptVocabulary(_Model):
    """What a model was trained to draw, from ``vocabulary.json`` in its folder (the embedded
    model ships one): the app builds its placeholder, prompt ideas and completion from it."""

    subjects: list[str] = Field(description="Names it knows, e.g. 'cat face'")
    symbols: list[str] = Field(default_factory=list, description="A glyph per subject, if any")
    styles: list[str] = Field(default_factory=list, description="Used as '<style> style'")
    backgrounds: list[str] = Field(
        default_factory=list, description="Colours, used as 'on a <colour> background'"
    )
    examples: list[str] = Field(default_factory=list, description="Prompts it draws well")


class ModelInfo(_Model):
    id: str
    name: str
    format: Literal["diffusers", "single_file"]
    path: str
    architecture: str = Field(
        "sd1",
        description="sd1, sd2, sdxl (ε/v-prediction UNets) or "
        "sd3, flux (rectified-flow transformers)",
    )
    embedded: bool = False
    loaded: bool = False
    size_bytes: int = 0
    problem: str = Field("", description="Why this file cannot be loaded, if it cannot")
    note: str = Field(
        "",
        description="How a single-file SD3/Flux model is assembled: what it runs "
        "without (e.g. T5) and which file to add, fp8 weights, configs used",
    )
    native_size: int = Field(0, description="Square size (px) it was trained at; 0 if unknown")
    vocabulary: PromptVocabulary | None = Field(
        None, description="The prompts it knows, where its folder says (vocabulary.json)"
    )
    family: Literal["diffusion", "flow"] | None = Field(
        None,
        description="'diffusion' (ε/v-prediction UNets) or 'flow' (rectified flow); "
        "filled from ``architecture`` (engine/architecture.py) when not given",
    )
    methods: list[str] | None = Field(
        None,
        description="The methods that apply to it, of: uncertainty, analytic, "
        "calibration, fits, video; filled from ``architecture`` when not given",
    )

    @model_validator(mode="after")
    def _architecture_facts(self) -> ModelInfo:
        """``family`` and ``methods`` from the architecture's facts (an engine that predates
        them sends neither, and the client still knows them)."""
        arch = Architecture.parse(self.architecture)
        if self.family is None:
            self.family = arch.family.value  # type: ignore[assignment]
        if self.methods is None:
            self.methods = [m.value for m in Method if arch.supports(m)]
        return self


class LoadModelRequest(_Model):
    id: str | None = None
    path: str | None = Field(None, description="A diffusers folder or .safetensors file on disk")
    offload: Literal["none", "t5-cpu", "model"] | None = Field(
        None,
        description="Memory placement for this and later loads: 'none' (all on the "
        "device), 't5-cpu' (SD3/Flux's T5 encoder runs on the CPU), 'model' (diffusers' model CPU "
        "offload: each part on the GPU only while it runs); None keeps the engine's "
        "(sfumato-engine --offload)",
    )


class SamplerOption(_Model):
    """An option of :class:`GenerateParams` that applies to a sampler, with its allowed values."""

    name: Literal["schedule", "timestep_spacing", "eta", "solver_order", "calibrated"]
    label: str = Field(description="A1111's spelling where it has one")
    default: str | float | int | bool | None = Field(
        None, description="None: the model's own scheduler config decides"
    )
    choices: list[str | int] = Field(default_factory=list, description="For enumerated options")
    minimum: float | None = None
    maximum: float | None = None


class SamplerInfo(_Model):
    name: str
    description: str
    options: list[SamplerOption] = []
    aliases: list[str] = Field(default_factory=list, description="Other names that select it")
    alias_of: str | None = Field(
        None,
        description="Set on legacy combined names ('DPM++ 2M Karras'): the sampler they "
        "select; ``schedule`` the schedule they imply",
    )
    schedule: str | None = None
    needs_fit: Literal["analytic"] | None = Field(
        None, description="'analytic': needs an analytic_fit of the model for the step grid"
    )
    stochastic: bool = False
    family: str = Field("", description="ode, sde, ancestral, multistep, distilled, analytic")
    model_family: Literal["diffusion", "flow"] = Field(
        "diffusion",
        description="Which models it samples: 'diffusion' (SD 1/2/XL, ε or v) or "
        "'flow' (SD3, Flux: rectified flow)",
    )
    uncertainty: bool = Field(
        False, description="BayesDiff uncertainty propagates through it (DDIM, DPM2)"
    )
    uncertainty_note: str = Field(
        "", description="Why uncertainty is unavailable with this sampler (a tooltip)"
    )


class FitInfo(_Model):
    """A cached fit for one model (by weights hash): what the Sampler panel shows as
    'fitted on 500 images, 2 min ago'."""

    id: str
    kind: Literal["analytic", "calibration", "uncertainty"]
    model: str = Field(description="Model id at fit time")
    model_hash: str
    created_at: datetime
    images: int = Field(description="How many x₀ went in")
    source: str = Field(description="fitset, folder:<path> or generated")
    samples_per_step: int = 0
    seconds: float = 0.0
    steps: list[int] = Field(default_factory=list, description="Analytic: step counts covered")
    timestep_spacing: str | None = None
    timesteps: int = Field(0, description="How many timesteps the fit holds")
    prior_precision: float | None = Field(None, description="Uncertainty: the prior's λ")
    noise: float | None = Field(None, description="Uncertainty: the observation noise σ²")


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
    default_model: str | None = Field(None, description="What a job naming no model will use")
    memory_used: int = Field(0, description="Bytes held by the loaded model (VRAM on GPU)")
    memory_total: int = 0
    memory_peak: int = Field(
        0, description="Peak bytes allocated on the GPU since the model loaded"
    )
    queued: int = 0
    torch: str = ""
    diffusers: str = ""
    gpu: str = Field("", description="GPU name (e.g. 'NVIDIA H100 80GB HBM3'); '' on CPU")
    python: str = Field("", description="The engine's Python version (for About and diagnostics)")
    fast_path: str = Field(
        "off",
        description="The compiled fast path: 'off', 'warming up', 'on' "
        "or 'failed' (then fast_path_detail says why; jobs run eager)",
    )
    fast_path_detail: str = ""
    offload: str = Field(
        "none",
        description="Memory placement of the models: 'none', 't5-cpu' "
        "or 'model' (LoadModelRequest.offload)",
    )
    offload_detail: str = Field("", description="What the placement means for the loaded model")


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
    """``step`` of ``total``, counted over the whole job (steps × batch count)."""

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
    index: int = Field(
        0,
        description="Image within the current batch (0..batch_size-1); in a sampler_grid job, "
        "the cell, counted row by row",
    )
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
    JobQueued
    | JobStarted
    | JobProgress
    | JobPreview
    | JobResult
    | JobFinished
    | QueueChanged
    | EngineStatus,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(data: str | bytes) -> Event:
    return EVENT_ADAPTER.validate_json(data)


# --------------------------------------------------------------------------- recipes in PNGs

PNG_PARAMETERS_KEY = "parameters"  # A1111's text chunk
PNG_RECIPE_KEY = "sfumato"  # our JSON chunk: {"version": 2, "kind": ..., "params": {...}, ...}
#: The JSON chunk's version. 2: the uncertainty options grouped (``params.uncertainty``).
RECIPE_VERSION = 2


def _recipe_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "version": 2, "params": fold_flat_uncertainty(dict(data["params"]))}


#: version → the step to the next one; :func:`recipe_from_json` runs them in order.
RECIPE_MIGRATIONS = {1: _recipe_v1_to_v2}


def migrate_recipe(data: dict[str, Any]) -> dict[str, Any]:
    """Our JSON chunk of any version (no version = 1) brought to :data:`RECIPE_VERSION`."""
    version = int(data.get("version", 1))
    if version > RECIPE_VERSION:
        raise ValueError(
            f"it was written by a newer Sfumato (recipe version {version}; this "
            f"one reads up to {RECIPE_VERSION})"
        )
    while version < RECIPE_VERSION:
        data = RECIPE_MIGRATIONS[version](data)
        version = int(data["version"])
    return data


def recipe_json(
    params: GenerateParams,
    *,
    seed: int,
    model_name: str | None,
    index: int,
    uncertainty: UncertaintyResult | None = None,
) -> str:
    data: dict[str, Any] = {
        "version": RECIPE_VERSION,
        "kind": "generate",
        "params": params.with_seed(seed).model_dump(mode="json"),
        "model_name": model_name,
        "index": index,
    }
    if uncertainty is not None:
        data["uncertainty"] = uncertainty.model_dump(mode="json")
    return json.dumps(data)


def recipe_from_json(text: str) -> GenerateParams:
    """The recipe in our JSON chunk, of any version (older ones migrated); raises ValueError,
    TypeError, KeyError or pydantic's ValidationError when it is damaged."""
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
        raise TypeError("no 'params' in it")
    return GenerateParams.model_validate(migrate_recipe(data)["params"])


def recipe_from_png_text(text: dict[str, str]) -> GenerateParams | None:
    """The recipe in a PNG's text chunks: ours if present, else A1111's; None if neither."""
    if PNG_RECIPE_KEY in text:
        return recipe_from_json(text[PNG_RECIPE_KEY])
    if PNG_PARAMETERS_KEY in text:
        return GenerateParams.from_a1111(text[PNG_PARAMETERS_KEY])
    return None


#: The form's defaults (:func:`form_values` of a default recipe).
FORM_DEFAULTS: dict[str, Any] = form_values(GenerateParams())
