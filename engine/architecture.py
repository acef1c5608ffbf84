"""Model architectures and their facts: one table that the engine and the app both read.

A model's ``architecture`` (:class:`engine.protocol.ModelInfo`) is one of :class:`Architecture`'s
values, as the registry detects it (``engine/models/registry.py``: a diffusers folder by its
pipeline class and UNet, a single file by its tensor names). Each architecture knows its native
size, its family (ε/v-prediction diffusion or rectified flow), its prediction type where the
architecture fixes it, and which of Sfumato's methods apply — with the reason where one does not.
Where a feature needs to know "does this apply to that model", it asks here; a new architecture
is one more row in :data:`_FACTS`.

The built-in ``sfumato-tiny`` is an SD 1.x-shaped model (one CLIP text encoder, a UNet with
cross-attention): it is ``sd1``, and its native size (64) comes from its own configs, as every
diffusers folder's does (:attr:`engine.protocol.ModelInfo.native_size`).

No torch, no engine imports: the app reads this module through :mod:`engine.protocol`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Family(StrEnum):
    """How a model denoises: the values are the wire's ``model_family`` strings."""

    DIFFUSION = "diffusion"  # DDPM: ε- or v-prediction UNets (SD 1.x/2.x/XL)
    FLOW = "flow"  # rectified-flow transformers predicting a velocity (SD3, Flux)


class Method(StrEnum):
    """Sfumato's methods that apply to some architectures only."""

    UNCERTAINTY = "uncertainty"  # BayesDiff maps (needs an uncertainty fit)
    ANALYTIC = "analytic"  # the Analytic-DPM samplers (need an analytic fit)
    CALIBRATION = "calibration"  # calibrated ε̂ (needs a calibration fit)
    FITS = "fits"  # the fit jobs: analytic_fit, calibration_fit, uncertainty_fit
    VIDEO_EDIT = "video"  # LOVECon / ControlVideo (the video_edit job)


#: How each method is named in a message.
METHOD_NAMES: dict[Method, str] = {
    Method.UNCERTAINTY: "Uncertainty (BayesDiff)",
    Method.ANALYTIC: "Analytic-DPM",
    Method.CALIBRATION: "Calibration",
    Method.FITS: "Fitting",
    Method.VIDEO_EDIT: "Video editing",
}

#: Why the methods derived for DDPMs do not apply to a flow model.
FLOW_NOTE = (
    "BayesDiff, Analytic-DPM and calibration are derived for ε-prediction diffusion (DDPM); a "
    "flow model predicts a velocity on a straight path, so they do not apply "
    "(docs/flow-models.md)."
)
#: Why SDXL has none of the methods yet.
SDXL_NOTE = (
    "the fits, the methods built on them (BayesDiff, Analytic-DPM, calibration) and video "
    "editing are written for the single text encoder of SD 1.x/2.x; SDXL's second encoder and "
    "added conditioning are not wired into them yet."
)

_DDPM_METHODS = frozenset(Method)


@dataclass(frozen=True)
class ArchitectureFacts:
    label: str  # how a person names it
    family: Family
    native_size: int  # square training side in pixels; 0: unknown (the model's configs say)
    #: The prediction type the architecture fixes (diffusers' ``prediction_type``), or None
    #: where the model's scheduler config decides (a UNet may be ε or v: SD 2.x ships both,
    #: 512-base ε and 768-v; v-prediction fine-tunes of SD 1.x and SDXL exist).
    prediction: str | None
    default_prediction: str  # what a checkpoint that says nothing is taken to predict
    #: Width of the text conditioning the UNet's cross-attention takes (a LoRA's must match);
    #: 0 for the flow transformers (joint attention) and where unknown.
    context_dim: int
    methods: frozenset[Method]
    note: str = ""  # why the methods it lacks do not apply


class Architecture(StrEnum):
    """The architectures the registry detects (``ModelInfo.architecture``)."""

    SD1 = "sd1"
    SD2 = "sd2"
    SDXL = "sdxl"
    SD3 = "sd3"
    FLUX = "flux"
    UNKNOWN = "unknown"  # a checkpoint the registry could not identify (its ``problem`` says)

    @classmethod
    def parse(cls, value: str | None) -> Architecture:
        """The member for an architecture string; anything unrecognised is UNKNOWN."""
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN

    @property
    def facts(self) -> ArchitectureFacts:
        return _FACTS[self]

    @property
    def family(self) -> Family:
        return self.facts.family

    @property
    def native_size(self) -> int:
        return self.facts.native_size

    @property
    def methods(self) -> frozenset[Method]:
        return self.facts.methods

    def supports(self, method: Method | str) -> bool:
        return Method(method) in self.facts.methods

    def why_not(self, method: Method | str) -> str:
        """'' where ``method`` applies, else a sentence saying why not."""
        if self.supports(method):
            return ""
        return (
            f"{METHOD_NAMES[Method(method)]} is not available for {self.value} models: "
            f"{self.facts.note}"
        )


_FACTS: dict[Architecture, ArchitectureFacts] = {
    Architecture.SD1: ArchitectureFacts(
        "Stable Diffusion 1.x", Family.DIFFUSION, 512, None, "epsilon", 768, _DDPM_METHODS
    ),
    Architecture.SD2: ArchitectureFacts(
        "Stable Diffusion 2.x", Family.DIFFUSION, 768, None, "v_prediction", 1024, _DDPM_METHODS
    ),
    Architecture.SDXL: ArchitectureFacts(
        "Stable Diffusion XL", Family.DIFFUSION, 1024, None, "epsilon", 2048, frozenset(), SDXL_NOTE
    ),
    Architecture.SD3: ArchitectureFacts(
        "Stable Diffusion 3",
        Family.FLOW,
        1024,
        "flow_prediction",
        "flow_prediction",
        0,
        frozenset(),
        FLOW_NOTE,
    ),
    Architecture.FLUX: ArchitectureFacts(
        "Flux.1", Family.FLOW, 1024, "flow_prediction", "flow_prediction", 0, frozenset(), FLOW_NOTE
    ),
    # Unidentified files cannot be loaded (the registry says why); the checks treat them as
    # SD 1.x-like so that the message a person sees is the loader's, not a method's.
    Architecture.UNKNOWN: ArchitectureFacts(
        "unknown", Family.DIFFUSION, 0, None, "epsilon", 0, _DDPM_METHODS
    ),
}

#: The rectified-flow architectures.
FLOW_ARCHITECTURES: tuple[str, ...] = tuple(
    a.value for a in Architecture if a.family is Family.FLOW
)
