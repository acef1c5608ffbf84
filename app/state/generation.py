"""The generation settings being edited in the Prompt dock: one :class:`GenerateParams` in parts."""

from __future__ import annotations

from pydantic import ValidationError
from PySide6.QtCore import Signal

from engine.protocol import MAX_SEED, MAX_SIDE, GenerateParams, form_fields, form_values

from .observable import Observable, Property

# (label, width, height): squares first, then common aspect ratios around 512 and 1024.
SIZE_PRESETS: list[tuple[str, int, int]] = [
    ("64 × 64 · tiny", 64, 64),
    ("256 × 256", 256, 256),
    ("512 × 512 · SD 1.5", 512, 512),
    ("768 × 768 · SD 2", 768, 768),
    ("1024 × 1024 · SDXL", 1024, 1024),
    ("512 × 768 · 2:3 portrait", 512, 768),
    ("768 × 512 · 3:2 landscape", 768, 512),
    ("576 × 1024 · 9:16", 576, 1024),
    ("1024 × 576 · 16:9", 1024, 576),
    ("832 × 1216 · SDXL portrait", 832, 1216),
    ("1216 × 832 · SDXL landscape", 1216, 832),
]

#: The fields of GenerateParams the Prompt dock edits, in form order.
FIELDS = (
    "prompt",
    "negative_prompt",
    "width",
    "height",
    "steps",
    "cfg_scale",
    "sampler",
    "seed",
    "batch_size",
    "batch_count",
)


def field_of(path: str | None) -> str | None:
    """The Prompt-dock field named by an API error path like ``job.params.width`` (or None)."""
    if not path:
        return None
    parts = [p for p in path.replace("[", ".").replace("]", "").split(".") if p]
    for part in reversed(parts):
        if part in FIELDS or part in ("model", "uncertainty"):
            return part
        if part.startswith(("uncertainty_", "variation_")):
            return "uncertainty"  # shown in the Uncertainty panel
    return None


def snap8(value: int) -> int:
    """The nearest multiple of 8 within the engine's limits."""
    return max(8, min(MAX_SIDE, (int(value) + 4) // 8 * 8))


class GenerationSettings(Observable):
    """What the next Generate press will ask for, plus per-field validation messages."""

    prompt = Property("")
    negative_prompt = Property("")
    seed = Property(-1, coerce=int, doc="-1 = a new random seed for every job")
    width = Property(512, coerce=int)
    height = Property(512, coerce=int)
    steps = Property(25, coerce=int)
    cfg_scale = Property(7.0, coerce=float)
    sampler = Property("Euler a")
    batch_size = Property(1, coerce=int)
    batch_count = Property(1, coerce=int)
    model = Property[str | None](None, doc="Model id for the job; None = the loaded one")

    #: ``{field: message}``; emitted whenever a field gains or loses a message.
    errors_changed = Signal(dict)
    #: The sampler options (schedule, eta, …) changed: ``{name: value}``.
    options_changed = Signal(dict)

    def __init__(self) -> None:
        super().__init__()
        self._errors: dict[str, str] = {}
        # Every other GenerateParams field (sampler options such as schedule or eta): kept and
        # sent as they are, so a restored recipe round-trips even where no widget edits it.
        self._options: dict[str, object] = {}
        for name in FIELDS:
            # Editing a field clears its stale error.
            getattr(self, f"{name}_changed").connect(lambda _v, n=name: self.clear_error(n))

    # ----------------------------------------------------------------- params in and out
    def to_params(self) -> GenerateParams:
        """The current settings as a request; raises pydantic's ValidationError if invalid."""
        known = form_fields()
        return GenerateParams(
            **{
                k: v
                for k, v in self._options.items()
                if k in known and k not in FIELDS and k != "model"
            },
            model=self.model,
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            seed=self.seed,
            width=self.width,
            height=self.height,
            steps=self.steps,
            cfg_scale=self.cfg_scale,
            sampler=self.sampler,
            batch_size=self.batch_size,
            batch_count=self.batch_count,
        )

    def validated_params(self) -> GenerateParams | None:
        """:meth:`to_params`, or None after putting the validation messages on the fields."""
        try:
            return self.to_params()
        except ValidationError as exc:
            errors: dict[str, str] = {}
            for err in exc.errors():
                name = field_of(".".join(str(p) for p in err["loc"])) or "prompt"
                msg = str(err["msg"]).removeprefix("Value error, ")
                errors.setdefault(name, msg)
            self.set_errors(errors)
            return None

    def apply(
        self, params: GenerateParams, *, keep_model: bool = True, fields: set[str] | None = None
    ) -> None:
        """Restore a recipe (from history or a dropped PNG) into the editable fields.

        ``fields``: the ones the recipe really set (an A1111 or ComfyUI file names only some);
        the others keep their current values, as in A1111. None = all. Sampler options follow
        the sampler: a recipe naming one brings its options (or none)."""

        def given(name: str) -> bool:
            return fields is None or name in fields

        for name in FIELDS:
            if given(name):
                setattr(self, name, getattr(params, name))
        if not keep_model and given("model"):
            self.model = params.model
        defaults = form_values(GenerateParams())
        recipe_options = {
            k: v
            for k, v in form_values(params).items()
            if k not in FIELDS and k != "model" and v != defaults.get(k)
        }
        if given("sampler"):
            self._options = recipe_options
        else:
            self._options.update({k: v for k, v in recipe_options.items() if given(k)})
        self.options_changed.emit(self.options)
        self.clear_errors()

    # ----------------------------------------------------------------- sampler options
    @property
    def options(self) -> dict[str, object]:
        """Sampler options that differ from GenerateParams' defaults (schedule, eta, …)."""
        return dict(self._options)

    def option(self, name: str, default: object = None) -> object:
        return self._options.get(name, default)

    def set_option(self, name: str, value: object) -> None:
        """Set one sampler option; ``None`` returns it to the default."""
        if value is None:
            changed = self._options.pop(name, None) is not None
        else:
            changed = self._options.get(name) != value
            self._options[name] = value
        if changed:
            self.clear_error(name)
            self.options_changed.emit(self.options)

    # ----------------------------------------------------------------- helpers for the dock
    def set_size(self, width: int, height: int) -> None:
        self.width, self.height = snap8(width), snap8(height)

    def swap_size(self) -> None:
        self.width, self.height = self.height, self.width

    def randomize_seed(self) -> None:
        self.seed = -1

    def reuse_seed(self, seed: int) -> None:
        self.seed = max(0, min(MAX_SEED, seed))

    # ----------------------------------------------------------------- errors
    @property
    def errors(self) -> dict[str, str]:
        return dict(self._errors)

    def error(self, name: str) -> str:
        return self._errors.get(name, "")

    def set_errors(self, errors: dict[str, str]) -> None:
        self._errors = dict(errors)
        self.errors_changed.emit(self.errors)

    def set_error(self, name: str, message: str) -> None:
        self._errors[name] = message
        self.errors_changed.emit(self.errors)

    def clear_error(self, name: str) -> None:
        if self._errors.pop(name, None) is not None:
            self.errors_changed.emit(self.errors)

    def clear_errors(self) -> None:
        if self._errors:
            self._errors = {}
            self.errors_changed.emit({})
