"""What the Sampler panel shows: the catalogue from /v1/samplers and the model's fits.

No widgets: which options apply to a sampler, what a legacy name means, whether the sampler can
run with the fits the loaded model has, and how to say so, are all decided here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from engine.protocol import (
    SCHEDULES,
    Architecture,
    FitInfo,
    GridSampler,
    Method,
    ModelInfo,
    SamplerInfo,
    SamplerOption,
    sampler_for_family,
)

from .observable import Observable, Property

#: Step counts offered as one-click presets.
STEP_PRESETS: tuple[int, ...] = (10, 20, 25, 30, 50)
#: The samplers Analytic-DPM improves, and their analytic versions (the "Analytic" toggle).
ANALYTIC_PAIRS: dict[str, str] = {"DDPM": "Analytic-DDPM", "DDIM": "Analytic-DDIM"}
#: Options the panel edits in its Options section (``calibrated`` has its own toggle).
PANEL_OPTIONS: tuple[str, ...] = ("schedule", "timestep_spacing", "eta", "solver_order")
#: Step counts an analytic fit covers when the user presses "Fit now" (plus the current one).
ANALYTIC_FIT_STEPS: tuple[int, ...] = (10, 20, 25, 50, 100)
FIT_NAMES = {"analytic": "Analytic-DPM", "calibration": "Calibration", "uncertainty": "Uncertainty"}
#: "Fit now" sizes, chosen so a fit of the built-in model takes about a minute on a laptop CPU:
#: Γ_t from 64 noised images per timestep (METHODS.md: "a few dozen to a few hundred" suffice),
#: the calibration mean from 128 images on 50 timesteps (a per-channel mean over 128 × H × W
#: values). Scripts wanting more call the API with their own numbers.
ANALYTIC_SAMPLES_PER_STEP = 64
CALIBRATION_IMAGES = 128
CALIBRATION_TIMESTEPS = 50


def listed(samplers: list[SamplerInfo]) -> list[SamplerInfo]:
    """The samplers to list: legacy combined names ("DPM++ 2M Karras") select another entry."""
    return [s for s in samplers if not s.alias_of]


def family_note(sampler: SamplerInfo | None, architecture: str | None) -> str:
    """Why ``sampler`` cannot sample a model of ``architecture`` ("" when it can, or when the
    model is not known yet): flow samplers are for SD3/Flux, the others for SD 1/2/XL
    (docs/flow-models.md)."""
    if sampler is None or not architecture:
        return ""
    family = model_family(architecture)
    if sampler.model_family == family:
        return ""
    if family == "flow":
        return (
            f"{sampler.name} samples ε/v-prediction models (SD 1/2/XL); this {architecture} "
            "model is a rectified flow: pick a Flow sampler."
        )
    return (
        f"{sampler.name} samples rectified-flow models (SD3, Flux), not this {architecture} model."
    )


def for_model(samplers: list[SamplerInfo], architecture: str | None) -> list[SamplerInfo]:
    """The samplers that sample a model of ``architecture`` (all while it is not known)."""
    family = model_family(architecture)
    return [s for s in samplers if family is None or s.model_family == family]


def model_family(architecture: str | None) -> str | None:
    """'flow' (SD3, Flux), 'diffusion' (SD 1/2/XL), or None while the model is not known: the
    architecture's family (engine/architecture.py)."""
    if not architecture:
        return None
    return Architecture.parse(architecture).family.value


#: Options of the recipe that a model family does not take (the engine refuses them): BayesDiff
#: and calibration are derived for ε-prediction DDPMs; ``flow`` is for flow models only.
FOREIGN_OPTIONS = {"flow": ("calibrated", "uncertainty"), "diffusion": ("flow",)}
#: Why the DDPM-derived methods are greyed on flow models (docs/flow-models.md).
FLOW_METHODS_NOTE = (
    "Derived for ε-prediction diffusion models (SD 1/2/XL); a rectified-flow "
    "model (SD3, Flux) predicts a velocity, so it does not apply yet "
    "(docs/flow-models.md says what carrying it over would take)."
)
#: The same, short enough for a status line under a toggle (the tooltip has the whole reason).
FLOW_METHODS_SHORT = "Not for flow models (SD3, Flux): derived for ε-prediction diffusion."


def fitted_methods_note(model: ModelInfo | None) -> tuple[str, str]:
    """(status line, tooltip) when Analytic-DPM and calibration do not apply to ``model`` — a
    flow model, or SDXL (its ``methods``, engine/architecture.py) — else ("", "")."""
    if model is None or {Method.ANALYTIC, Method.CALIBRATION} <= set(model.methods or ()):
        return "", ""
    if model_family(model.architecture) == "flow":
        return FLOW_METHODS_SHORT, FLOW_METHODS_NOTE
    arch = Architecture.parse(model.architecture)
    return (
        f"Not for {arch.facts.label} yet: written for SD 1.x/2.x.",
        arch.why_not(Method.CALIBRATION),
    )


def analytic_note(sampler: SamplerInfo | None, model: ModelInfo | None) -> str:
    """Why an Analytic-DPM sampler cannot run on ``model`` of its own family (SDXL: no fit can
    be made), else ''. (A flow model lists no Analytic-DPM sampler at all: family_note.)"""
    if (
        sampler is None
        or sampler.needs_fit != "analytic"
        or model is None
        or model_family(model.architecture) != sampler.model_family
        or Method.ANALYTIC in set(model.methods or ())
    ):
        return ""
    return Architecture.parse(model.architecture).why_not(Method.ANALYTIC)


@dataclass(frozen=True)
class SamplerSwitch:
    """The sampler to switch to because the model's family changed, and what to tell the user."""

    sampler: str
    note: str


def sampler_switch(
    name: str, architecture: str | None, samplers: list[SamplerInfo]
) -> SamplerSwitch | None:
    """A switch when sampler ``name`` cannot sample a model of ``architecture``: the same method
    for the model's family (engine.protocol.sampler_for_family: Euler ↔ Flow Euler, …), or None."""
    family = model_family(architecture)
    info, _ = resolve(name, samplers)
    if family is None or info is None or info.model_family == family:
        return None
    target = sampler_for_family(info.name, family)
    offered = [s.name for s in listed(samplers) if s.model_family == family]
    if target not in offered:
        if not offered:
            return None
        target = offered[0]
    kind = "a rectified-flow" if family == "flow" else "an ε/v-prediction"
    return SamplerSwitch(
        target,
        f"{info.name} does not sample {architecture} models ({kind} model): switched to {target}.",
    )


def flow_options(value: object) -> tuple[float | None, float | None]:
    """(guidance, shift) of the recipe's ``flow`` option (a dict or a FlowOptions)."""
    if value is None:
        return None, None
    get = value.get if isinstance(value, dict) else lambda k: getattr(value, k, None)
    return get("guidance"), get("shift")


def flow_value(guidance: float | None, shift: float | None) -> dict[str, float] | None:
    """The ``flow`` option for the given values (None when both are the model's defaults)."""
    if guidance is None and shift is None:
        return None
    return {"guidance": guidance, "shift": shift}


def resolve(name: str, samplers: list[SamplerInfo]) -> tuple[SamplerInfo | None, str | None]:
    """(the listed sampler a name selects, the schedule a legacy name implies or None)."""
    by_name = {s.name: s for s in samplers}
    info = by_name.get(name)
    if info is None:
        low = name.lower()
        info = next((s for s in samplers if low in (a.lower() for a in s.aliases)), None)
    if info is not None and info.alias_of:
        return by_name.get(info.alias_of), info.schedule
    return info, None


def option(info: SamplerInfo | None, name: str) -> SamplerOption | None:
    if info is None:
        return None
    return next((o for o in info.options if o.name == name), None)


def analytic_toggle(name: str) -> tuple[bool, bool, str]:
    """(enabled, checked, sampler after toggling) for the Analytic toggle of sampler ``name``."""
    if name in ANALYTIC_PAIRS:
        return True, False, ANALYTIC_PAIRS[name]
    back = {v: k for k, v in ANALYTIC_PAIRS.items()}
    if name in back:
        return True, True, back[name]
    return False, False, name


def sampler_summary(sampler: str, options: dict[str, object]) -> str:
    """One line for a sampler and its options: ``'DPM++ 2M · Karras · calibrated'``."""
    known = {k: v for k, v in options.items() if k in GridSampler.model_fields and k != "sampler"}
    try:
        return GridSampler(sampler=sampler, **known).label()
    except ValueError:  # an option out of range (the engine will say which); show the name
        return sampler


def schedule_label(schedule: str) -> str:
    return SCHEDULES.get(schedule, schedule)


def format_age(when: datetime, now: datetime | None = None) -> str:
    """``'just now'``, ``'2 min ago'``, ``'3 h ago'``, ``'4 days ago'``."""
    now = now or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    s = max(0.0, (now - when).total_seconds())
    if s < 45:
        return "just now"
    if s < 3600:
        return f"{max(1, round(s / 60))} min ago"
    if s < 86400:
        return f"{round(s / 3600)} h ago"
    days = round(s / 86400)
    return f"{days} day{'s' if days != 1 else ''} ago"


@dataclass(frozen=True)
class FitNeed:
    """A fit the current recipe needs and the model lacks: what to say and what to run."""

    kind: str  # "analytic" or "calibration"
    message: str


class FitsState(Observable):
    """The cached fits of the loaded model (``GET /v1/fits``), newest first."""

    model = Property("", doc="Model id the fits belong to; '' = unknown / no engine")
    fits = Property[list[FitInfo]]([])
    #: Set while the list is being fetched, or a sentence if fetching failed.
    problem = Property("")

    def latest(self, kind: str) -> FitInfo | None:
        return next((f for f in self.fits if f.kind == kind), None)

    def analytic_steps(self, spacing: str | None = None) -> set[int]:
        """Step counts some analytic fit covers (for this timestep spacing)."""
        out: set[int] = set()
        for f in self.fits:
            if f.kind == "analytic" and (f.timestep_spacing or None) == (spacing or None):
                out.update(f.steps)
        return out

    def describe(self, kind: str, now: datetime | None = None) -> str:
        """``'fitted on 500 images, 2 min ago'`` or ``'not fitted'``."""
        fit = self.latest(kind)
        if fit is None:
            return "not fitted for this model" if self.model else "no model loaded"
        text = f"fitted on {fit.images} images, {format_age(fit.created_at, now)}"
        if kind == "analytic":
            steps = sorted(self.analytic_steps(fit.timestep_spacing))
            if steps:
                text += " · " + "/".join(str(s) for s in steps) + " steps"
        return text

    def needs(
        self, sampler: SamplerInfo | None, steps: int, spacing: str | None, calibrated: bool
    ) -> list[FitNeed]:
        """The fits the recipe would fail without, each with a sentence for the panel."""
        out: list[FitNeed] = []
        if (
            sampler is not None
            and sampler.needs_fit == "analytic"
            and steps not in self.analytic_steps(spacing)
        ):
            what = (
                "no analytic fit"
                if self.latest("analytic") is None
                else f"no analytic fit for {steps} steps"
            )
            out.append(
                FitNeed(
                    "analytic",
                    f"{sampler.name} first measures this model's noise "
                    f"at each step (a one-off fit): {what} yet.",
                )
            )
        if calibrated and self.latest("calibration") is None:
            out.append(
                FitNeed("calibration", "Calibrated sampling needs a calibration fit of the model.")
            )
        return out
