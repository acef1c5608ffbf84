"""The sampler catalogue: A1111 names → diffusers schedulers (and ours) with their options.

Names follow A1111 so that recipes round-trip through PNG metadata with other tools; A1111 < 1.9
combined names ("DPM++ 2M Karras") stay valid as aliases that imply a schedule. Each entry builds
its scheduler from the loaded model's own scheduler config (``from_config``), so the model's
training noise schedule and prediction type (ε or v) are kept.

Which options apply is read off the scheduler class itself (its ``__init__`` and ``step``
signatures), so the catalogue cannot claim an option diffusers would silently ignore.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from engine.architecture import FLOW_NOTE, Architecture, Family, Method
from engine.protocol import (
    OPTIMAL_SPACING,
    SCHEDULES,
    TIMESTEP_SPACINGS,
    GenerateParams,
    SamplerInfo,
    SamplerOption,
)

_SCHEDULE_FLAGS = {
    "karras": "use_karras_sigmas",
    "exponential": "use_exponential_sigmas",
    "beta": "use_beta_sigmas",
}


@dataclass(frozen=True)
class SamplerSpec:
    name: str
    scheduler: str  # diffusers class name, or one of ours in engine.schedulers
    description: str
    options: dict[str, Any] = field(default_factory=dict)  # fixed config overrides
    family: str = "ode"
    stochastic: bool = False
    eta_default: float | None = None  # set where η applies (DDIM, TCD, SA-Solver)
    order_param: str | None = None  # config key that solver_order sets
    order_range: tuple[int, int] = (1, 3)
    needs_fit: str | None = None
    aliases: tuple[str, ...] = ()
    model_family: Family = Family.DIFFUSION  # the models it samples (engine/architecture.py)

    @property
    def cls(self):
        from engine import schedulers

        if hasattr(schedulers, self.scheduler):
            return getattr(schedulers, self.scheduler)
        import diffusers

        return getattr(diffusers, self.scheduler)

    def _init_params(self) -> set[str]:
        return set(inspect.signature(self.cls.__init__).parameters)

    def schedules(self) -> list[str]:
        params = self._init_params()
        return ["default", *(k for k, flag in _SCHEDULE_FLAGS.items() if flag in params)]

    def supports(self, option: str) -> bool:
        if self.model_family is Family.FLOW and option in (
            "schedule",
            "timestep_spacing",
            "calibrated",
        ):
            return False
        if option == "schedule":
            return len(self.schedules()) > 1
        if option == "timestep_spacing":
            return "timestep_spacing" in self._init_params()
        if option == "eta":
            return self.eta_default is not None
        if option == "solver_order":
            return self.order_param is not None
        return option == "calibrated"

    def option_infos(self) -> list[SamplerOption]:
        out = []
        if self.model_family is Family.FLOW:  # schedules and spacings are the shift's job here
            if self.supports("solver_order"):
                lo, hi = self.order_range
                out.append(
                    SamplerOption(
                        name="solver_order", label="Solver order", choices=list(range(lo, hi + 1))
                    )
                )
            return out
        if self.supports("schedule"):
            out.append(
                SamplerOption(
                    name="schedule",
                    label="Schedule type",
                    default="default",
                    choices=self.schedules(),
                )
            )
        if self.supports("timestep_spacing"):
            extra = [OPTIMAL_SPACING] if self.needs_fit == "analytic" else []
            out.append(
                SamplerOption(
                    name="timestep_spacing",
                    label="Timestep spacing",
                    choices=[*TIMESTEP_SPACINGS, *extra],
                )
            )
        if self.supports("eta"):
            out.append(
                SamplerOption(
                    name="eta",
                    label="Eta DDIM" if self.name == "DDIM" else "Eta",
                    default=self.eta_default,
                    minimum=0.0,
                    maximum=1.0,
                )
            )
        if self.supports("solver_order"):
            lo, hi = self.order_range
            out.append(
                SamplerOption(
                    name="solver_order",
                    label="UniPC order" if self.name == "UniPC" else "Solver order",
                    choices=list(range(lo, hi + 1)),
                )
            )
        out.append(SamplerOption(name="calibrated", label="Calibrated", default=False))
        return out

    def info(self) -> SamplerInfo:
        # BayesDiff (docs/uncertainty.md) propagates variance through DDIM and DPM-Solver-2,
        # which is the k-diffusion/diffusers "DPM2" (KDPM2DiscreteScheduler) in ε form: the
        # steps engine.uncertainty.propagate has (its SUPPORTED table).
        from engine.uncertainty.propagate import SUPPORTED

        uq = self.scheduler in SUPPORTED
        return SamplerInfo(
            name=self.name,
            description=self.description,
            options=self.option_infos(),
            aliases=list(self.aliases),
            needs_fit=self.needs_fit,  # type: ignore[arg-type]
            stochastic=self.stochastic,
            family=self.family,
            uncertainty=uq,
            uncertainty_note=""
            if uq
            else FLOW_NOTE
            if self.model_family is Family.FLOW
            else (
                "Uncertainty (BayesDiff) is defined for DDIM and DPM-Solver-2 (DPM2) only: "
                "their steps are linear in ε̂, so its variance propagates in closed form."
            ),
            model_family=self.model_family.value,  # type: ignore[arg-type]
        )

    def config_overrides(self, base_config: dict[str, Any], p: GenerateParams) -> dict[str, Any]:
        """The ``from_config`` overrides for this recipe (assumes :func:`check_options` passed)."""
        params = self._init_params()
        kwargs = dict(self.options)
        # DDIM/DDPM/LCM/TCD default to clipping x̂₀ to [-1, 1], which is wrong for latents;
        # honour the model's config when it says, else do not clip.
        if "clip_sample" in params and "clip_sample" not in base_config:
            kwargs.setdefault("clip_sample", False)
        if p.schedule != "default":
            for flag in _SCHEDULE_FLAGS.values():
                if flag in params:
                    kwargs[flag] = False
            kwargs[_SCHEDULE_FLAGS[p.schedule]] = True
        if p.timestep_spacing:
            kwargs["timestep_spacing"] = p.timestep_spacing
        if p.solver_order is not None and self.order_param:
            kwargs[self.order_param] = p.solver_order
        if self.scheduler == "SASolverScheduler":
            # A model's DPM-Solver config carries algorithm_type "dpmsolver++", which SA-Solver
            # refuses (NotImplementedError): it names the same choice "data_prediction" (x̂₀,
            # as dpmsolver++) or "noise_prediction" (ε̂, as dpmsolver).
            algo = base_config.get("algorithm_type")
            if algo not in (None, "data_prediction", "noise_prediction"):
                kwargs["algorithm_type"] = (
                    "noise_prediction"
                    if algo in ("dpmsolver", "sde-dpmsolver")
                    else "data_prediction"
                )
        if self.model_family is Family.FLOW:
            kwargs.update(flow_overrides(self, base_config, p))
        if self.scheduler == "SASolverScheduler" and p.eta is not None:
            eta = float(p.eta)
            kwargs["tau_func"] = lambda _t: eta  # constant stochasticity τ over all t
        return kwargs

    def build(self, base_config: dict[str, Any], p: GenerateParams | None = None):
        p = p or GenerateParams(sampler=self.name)
        overrides = self.config_overrides(base_config, p)
        scheduler = self.cls.from_config(base_config, **overrides)
        if self.model_family is Family.FLOW:  # Flux's pipeline reads these off any scheduler
            extra = {k: overrides[k] for k in _DYNAMIC_SHIFT_KEYS if k in overrides}
            if extra:
                scheduler.register_to_config(**extra)
        return scheduler

    def call_kwargs(self, p: GenerateParams) -> dict[str, Any]:
        """Extra pipeline arguments: η goes to ``scheduler.step`` through the pipeline."""
        if self.eta_default is not None and "eta" in inspect.signature(self.cls.step).parameters:
            return {"eta": self.eta_default if p.eta is None else p.eta}
        return {}


FLOW_UNCERTAINTY_NOTE = FLOW_NOTE

_FLOW = {"prediction_type": "flow_prediction", "use_flow_sigmas": True}


#: Flux's resolution-dependent shift: μ interpolated linearly in the image's token count
#: between these (diffusers' FluxPipeline reads them off the scheduler's config).
_DYNAMIC_SHIFT_KEYS = {
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
}


def flow_overrides(
    spec: SamplerSpec, base_config: dict[str, Any], p: GenerateParams
) -> dict[str, Any]:
    """Flow-matching config: the model's shift carried into DPM-Solver/UniPC (their
    ``flow_shift``), or the recipe's shift where it sets one.

    A model with a resolution-dependent shift (Flux) keeps ``use_dynamic_shifting``: its
    pipeline always passes μ, which the multistep solvers refuse otherwise. A recipe's fixed
    shift s is then given as ``base_shift = max_shift = ln s``: e^μ = s at every size, and the
    exponential time shift e^μ·σ/(1 + (e^μ − 1)·σ) is SD3's s·σ/(1 + (s−1)·σ)."""
    import math

    shift = p.flow.shift if p.flow is not None else None
    params = spec._init_params()
    out: dict[str, Any] = {}
    if base_config.get("use_dynamic_shifting"):
        out.update({k: base_config.get(k, v) for k, v in _DYNAMIC_SHIFT_KEYS.items()})
        if shift is not None:
            out["base_shift"] = out["max_shift"] = math.log(shift)
        if "use_dynamic_shifting" in params:
            out["use_dynamic_shifting"] = True
        if "time_shift_type" in params:
            out["time_shift_type"] = "exponential"
        return out
    value = shift if shift is not None else base_config.get("shift", 1.0)
    out["flow_shift" if "flow_shift" in params else "shift"] = value
    return out


_DPMPP = {"algorithm_type": "dpmsolver++"}
_SDE = {"algorithm_type": "sde-dpmsolver++"}

CATALOGUE: dict[str, SamplerSpec] = {
    s.name: s
    for s in [
        SamplerSpec(
            "Euler a",
            "EulerAncestralDiscreteScheduler",
            "Euler ancestral: adds fresh noise each step; lively, varies with step count.",
            family="ancestral",
            stochastic=True,
            aliases=("k_euler_a",),
        ),
        SamplerSpec(
            "Euler",
            "EulerDiscreteScheduler",
            "First-order ODE solver: deterministic, converges as steps grow.",
            aliases=("k_euler",),
        ),
        SamplerSpec(
            "LMS",
            "LMSDiscreteScheduler",
            "Linear multistep (order 4) on the probability-flow ODE.",
            family="multistep",
            aliases=("k_lms",),
        ),
        SamplerSpec(
            "Heun",
            "HeunDiscreteScheduler",
            "Second-order Heun (Karras et al.): two model calls per step, accurate.",
            aliases=("k_heun",),
        ),
        SamplerSpec(
            "DPM2",
            "KDPM2DiscreteScheduler",
            "Second-order DPM-Solver-2 (k-diffusion): two model calls per step.",
            aliases=("k_dpm_2",),
        ),
        SamplerSpec(
            "DPM2 a",
            "KDPM2AncestralDiscreteScheduler",
            "DPM2 with ancestral noise each step.",
            family="ancestral",
            stochastic=True,
            aliases=("k_dpm_2_a",),
        ),
        SamplerSpec(
            "DPM++ 2M",
            "DPMSolverMultistepScheduler",
            "Second-order multistep DPM-Solver++: sharp results in 20–30 steps.",
            {**_DPMPP, "solver_order": 2},
            family="multistep",
            aliases=("k_dpmpp_2m",),
        ),
        SamplerSpec(
            "DPM++ 2M SDE",
            "DPMSolverMultistepScheduler",
            "Second-order multistep SDE DPM-Solver++: stochastic, detailed.",
            {**_SDE, "solver_order": 2},
            family="sde",
            stochastic=True,
            aliases=("k_dpmpp_2m_sde",),
        ),
        SamplerSpec(
            "DPM++ 3M SDE",
            "DPMSolverMultistepScheduler",
            "Third-order multistep SDE DPM-Solver++: wants 30+ steps.",
            {**_SDE, "solver_order": 3},
            family="sde",
            stochastic=True,
            aliases=("k_dpmpp_3m_sde",),
        ),
        SamplerSpec(
            "DPM++ SDE",
            "DPMSolverSDEScheduler",
            "Stochastic DPM-Solver++ (Brownian-tree noise): two model calls per step.",
            family="sde",
            stochastic=True,
            aliases=("k_dpmpp_sde",),
        ),
        SamplerSpec(
            "DPM++ 2S a",
            "DPMSolverSinglestepScheduler",
            "Second-order single-step DPM-Solver++. Unlike A1111's it adds no ancestral "
            "noise: diffusers has no ancestral single-step solver.",
            {**_DPMPP, "solver_order": 2},
            family="singlestep",
            aliases=("k_dpmpp_2s_a",),
        ),
        SamplerSpec(
            "DDIM",
            "DDIMScheduler",
            "DDIM: deterministic at η = 0 (the default), DDPM-like at η = 1.",
            {"set_alpha_to_one": False},
            eta_default=0.0,
            aliases=("ddim",),
        ),
        SamplerSpec(
            "DDPM",
            "DDPMScheduler",
            "Ancestral DDPM with the posterior variance: needs many steps (100+).",
            family="ancestral",
            stochastic=True,
            aliases=("ddpm",),
        ),
        SamplerSpec(
            "PLMS",
            "PNDMScheduler",
            "Pseudo linear multistep (PNDM without Runge–Kutta warm-up).",
            {"skip_prk_steps": True},
            family="multistep",
            aliases=("plms", "PNDM"),
        ),
        SamplerSpec(
            "UniPC",
            "UniPCMultistepScheduler",
            "Unified predictor–corrector (UniPC): strong at 10–20 steps.",
            family="multistep",
            order_param="solver_order",
            aliases=("unipc",),
        ),
        SamplerSpec(
            "DEIS",
            "DEISMultistepScheduler",
            "Diffusion exponential integrator sampler (multistep).",
            family="multistep",
            order_param="solver_order",
            aliases=("deis",),
        ),
        SamplerSpec(
            "SA-Solver",
            "SASolverScheduler",
            "Stochastic Adams solver; η sets its stochasticity τ (default 1).",
            family="sde",
            stochastic=True,
            eta_default=1.0,
            order_param="predictor_order",
            order_range=(1, 4),
            aliases=("sa_solver",),
        ),
        SamplerSpec(
            "LCM",
            "LCMScheduler",
            "Latent consistency sampling: for LCM-distilled models, 2–8 steps.",
            family="distilled",
            stochastic=True,
            aliases=("lcm",),
        ),
        SamplerSpec(
            "TCD",
            "TCDScheduler",
            "Trajectory consistency distillation sampling; η (γ) sets stochasticity.",
            family="distilled",
            stochastic=True,
            eta_default=0.3,
            aliases=("tcd",),
        ),
        SamplerSpec(
            "Analytic-DDPM",
            "AnalyticDPMScheduler",
            "DDPM with the optimal reverse variance (Analytic-DPM, Bao et al. 2022): "
            "good samples in far fewer steps. Needs an analytic fit of the model.",
            {"eta": 1.0},
            family="analytic",
            stochastic=True,
            needs_fit="analytic",
        ),
        SamplerSpec(
            "Analytic-DDIM",
            "AnalyticDPMScheduler",
            "DDIM's mean with the optimal variance added (Analytic-DPM). Needs an "
            "analytic fit of the model.",
            {"eta": 0.0},
            family="analytic",
            stochastic=True,
            needs_fit="analytic",
        ),
        # Rectified-flow models (SD3, Flux): the ODE dx/dt = v̂(x, t) on σ ∈ [0, 1]
        SamplerSpec(
            "Flow Euler",
            "FlowMatchEulerDiscreteScheduler",
            "Euler on the flow ODE: what SD3 and Flux were published with (Forge's "
            "'Euler' on these models).",
            model_family=Family.FLOW,
            aliases=("flow_euler",),
        ),
        SamplerSpec(
            "Flow Heun",
            "FlowHeunScheduler",
            "Second-order Heun on the flow ODE: two model calls per step.",
            model_family=Family.FLOW,
            aliases=("flow_heun",),
        ),
        SamplerSpec(
            "Flow DPM++ 2M",
            "DPMSolverMultistepScheduler",
            "Second-order multistep DPM-Solver++ on flow sigmas (velocity turned into "
            "x̂₀): sharp in fewer steps.",
            {**_DPMPP, **_FLOW, "solver_order": 2},
            family="multistep",
            model_family=Family.FLOW,
            aliases=("flow_dpmpp_2m",),
        ),
        SamplerSpec(
            "Flow UniPC",
            "UniPCMultistepScheduler",
            "UniPC predictor–corrector on flow sigmas.",
            {**_FLOW, "predict_x0": True},
            family="multistep",
            order_param="solver_order",
            model_family=Family.FLOW,
            aliases=("flow_unipc",),
        ),
    ]
}

#: A1111 < 1.9 names: sampler and schedule in one string.
LEGACY_NAMES: dict[str, tuple[str, str]] = {
    f"{base} {SCHEDULES[sched]}": (base, sched)
    for base, scheds in {
        "DPM++ 2M": ("karras", "exponential"),
        "DPM++ SDE": ("karras", "exponential"),
        "DPM++ 2M SDE": ("karras", "exponential"),
        "DPM++ 3M SDE": ("karras", "exponential"),
        "DPM++ 2S a": ("karras",),
        "DPM2": ("karras",),
        "DPM2 a": ("karras",),
        "LMS": ("karras",),
        "Euler": ("karras",),
    }.items()
    for sched in scheds
}
_ALIASES = {a.lower(): s.name for s in CATALOGUE.values() for a in s.aliases}


def resolve(name: str, schedule: str = "default") -> tuple[SamplerSpec, str]:
    """(spec, effective schedule) for a sampler name, legacy combined names included."""
    if name in CATALOGUE:
        return CATALOGUE[name], schedule
    if name in LEGACY_NAMES:
        base, implied = LEGACY_NAMES[name]
        if schedule not in ("default", implied):
            raise ValueError(
                f"{name!r} already implies the {SCHEDULES[implied]} schedule; "
                f"choose sampler {base!r} to use {SCHEDULES[schedule]}"
            )
        return CATALOGUE[base], implied
    if name.lower() in _ALIASES:
        return CATALOGUE[_ALIASES[name.lower()]], schedule
    known = ", ".join(CATALOGUE)
    raise KeyError(f"Unknown sampler {name!r}; choose one of: {known}")


def sampler_spec(name: str) -> SamplerSpec:
    return resolve(name)[0]


def effective_params(p: GenerateParams) -> tuple[SamplerSpec, GenerateParams]:
    """The spec and the recipe with a legacy name's schedule made explicit (for building)."""
    spec, schedule = resolve(p.sampler, p.schedule)
    return spec, p.model_copy(update={"schedule": schedule})


def check_options(p: GenerateParams) -> list[tuple[str, str]]:
    """(field, message) for every option the recipe sets that its sampler does not have."""
    try:
        spec, eff = effective_params(p)
    except (KeyError, ValueError) as exc:
        return [("sampler", exc.args[0])]
    problems = []
    if eff.schedule != "default" and eff.schedule not in spec.schedules():
        offers = ", ".join(SCHEDULES[s] for s in spec.schedules())
        message = f"{spec.name} has no {SCHEDULES[eff.schedule]} schedule; it offers: {offers}"
        problems.append(("schedule", message))
    for option in ("timestep_spacing", "eta", "solver_order"):
        if getattr(p, option) is not None and not spec.supports(option):
            problems.append((option, f"{spec.name} has no {option.replace('_', ' ')} option"))
    if p.timestep_spacing == OPTIMAL_SPACING and spec.needs_fit != "analytic":
        message = (
            f"The optimal trajectory is Analytic-DPM's; {spec.name} takes linspace, "
            "leading or trailing"
        )
        problems.append(("timestep_spacing", message))
    if p.solver_order is not None and spec.order_param:
        lo, hi = spec.order_range
        if not lo <= p.solver_order <= hi:
            problems.append(("solver_order", f"{spec.name} takes orders {lo}..{hi}"))
    return problems


def check_family(p: GenerateParams, architecture: str) -> list[tuple[str, str]]:
    """(field, message) for a recipe that does not fit its model's family: an ε-sampler on a
    flow model or a flow sampler on SD, and on flow models the methods derived for
    ε-prediction DDPMs (BayesDiff, Analytic-DPM, calibration) and on SD models the flow
    options."""
    arch = Architecture.parse(architecture)
    family = arch.family
    try:
        spec = resolve(p.sampler, p.schedule)[0]
    except (KeyError, ValueError):
        return []  # check_options says it
    problems = []
    if spec.needs_fit == "analytic" and not arch.supports(Method.ANALYTIC):
        problems.append(
            (
                "sampler",
                (
                    f"{spec.name} (Analytic-DPM) is not available for "
                    f"{architecture} models: {arch.facts.note}"
                ),
            )
        )
    elif spec.model_family != family:
        offers = ", ".join(s.name for s in CATALOGUE.values() if s.model_family == family)
        kind = "a rectified-flow" if family == "flow" else "an ε/v-prediction diffusion"
        problems.append(
            (
                "sampler",
                (
                    f"{spec.name} does not sample {architecture} models "
                    f"({kind} model); choose one of: {offers}"
                ),
            )
        )
    for name, method, on in (
        ("uncertainty", Method.UNCERTAINTY, p.uncertainty is not None),
        ("calibrated", Method.CALIBRATION, p.calibrated),
    ):
        if on and not arch.supports(method):
            problems.append((name, arch.why_not(method)))
    if family != Family.FLOW and p.flow is not None:
        problems.append(
            (
                "flow",
                (
                    "Distilled guidance and shift are options of flow models "
                    f"(SD3, Flux), not of {architecture} models: leave them unset"
                ),
            )
        )
    return problems


def sampler_infos() -> list[SamplerInfo]:
    """The catalogue, then the legacy combined names as aliases (so older clients list them)."""
    infos = [s.info() for s in CATALOGUE.values()]
    for name, (base, sched) in LEGACY_NAMES.items():
        spec = CATALOGUE[base]
        infos.append(
            spec.info().model_copy(
                update={
                    "name": name,
                    "alias_of": base,
                    "schedule": sched,
                    "aliases": [],
                    "description": f"{base} on the {SCHEDULES[sched]} schedule (A1111 < 1.9 name).",
                }
            )
        )
    return infos
