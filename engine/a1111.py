"""A1111's ``parameters`` text (its "PNG info") written and read through ONE table.

The text is the prompt, an optional ``Negative prompt:`` part, and a last line of
``Key: value`` pairs::

    a castle on a hill
    Negative prompt: blurry
    Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1, Size: 512x768

A1111's reading rules, followed here (learned from its ``infotext_utils``, not copied):

- the last line is the settings line only if it holds **three or more** ``key: value`` pairs;
  otherwise it is part of the prompt (so a prompt-only PNG keeps its last line);
- lines after one starting ``Negative prompt:`` are the negative prompt;
- a value with a comma or colon is written as a JSON string (``"…"``) and unquoted on reading;
- CRLF line ends read like LF.

Every key Sfumato knows is one :class:`Row` of :data:`ROWS`: its A1111 ``label``, the
``fields`` it sets (the form's flat names, :func:`engine.protocol.form_values`: the uncertainty
group's are ``uncertainty_samples`` …; ``GenerateParams`` folds them into their group), ``read`` (text → field updates)
and ``write`` (recipe → text, or None to leave it out). The writer walks the rows in order;
the reader looks each label up. **Adding a key is adding a row**, e.g. A1111's clip skip::

    Row("Clip skip", ("clip_skip",), read=lambda v, kv: {"clip_skip": int(v)},
        write=lambda p: p.clip_skip if p.clip_skip != 1 else None)

(``GenerateParams`` must have the field; the row goes where A1111 writes it in the line.) Keys
that say what made the image but change nothing go in :data:`INFORMATIONAL`; every other key
no row reads is reported back as *not restored* (``Hires upscale``, ``Hires steps``,
``Denoising strength`` …), so the user knows what differs.

Values outside what Sfumato accepts (a 64-bit seed, 1366×768, 150 steps of CFG) do not refuse
the recipe: :func:`parse` adjusts them to the nearest usable value, or leaves the field at its
default, and says so in :attr:`A1111Recipe.notes`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.protocol import GenerateParams

Fields = dict[str, Any]


@dataclass(frozen=True)
class Row:
    """One A1111 key: ``read(value, all_pairs) → {field: value}``, ``write(params) → value or
    None`` (None: not written). ``fields`` names what ``read`` sets (for "what was restored")."""

    label: str
    fields: tuple[str, ...]
    read: Callable[[str, dict[str, str]], Fields] | None
    write: Callable[[GenerateParams], object] | None = None


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def _size(v: str, _kv: dict[str, str]) -> Fields:
    w, h = v.lower().replace("×", "x").split("x")
    return {"width": int(w), "height": int(h)}


def _schedule(v: str, _kv: dict[str, str]) -> Fields:
    from engine.protocol import A1111_SPACING_SCHEDULES, SCHEDULE_IDS

    label = v.strip().lower()
    out: Fields = {"schedule": SCHEDULE_IDS.get(label, "default")}
    if label in A1111_SPACING_SCHEDULES:
        out["timestep_spacing"] = A1111_SPACING_SCHEDULES[label]
    return out


def _uncertainty(v: str, _kv: dict[str, str]) -> Fields:
    s, k, m = (int(x) for x in v.split("/"))
    return {
        "uncertainty": True,
        "uncertainty_samples": s,
        "uncertainty_skip": k,
        "uncertainty_decodes": m,
    }


def _flow(kv: dict[str, str]) -> Fields:
    """The ``flow`` group from Forge's "Distilled CFG Scale" and "Shift" (either may be
    missing)."""
    out: Fields = {}
    for label, name in (("Distilled CFG Scale", "guidance"), ("Shift", "shift")):
        if label in kv:
            out[name] = float(kv[label])
    return out


def _variation(v: str, _kv: dict[str, str]) -> Fields:
    step, seed = (int(x) for x in v.split("/"))
    return {"variation_step": step, "variation_seed": seed}


def _old_variation_step(v: str, kv: dict[str, str]) -> Fields:
    """Sfumato ≤ recipe v1 wrote BayesDiff variations as ``Variation step`` + ``Variation seed``.
    ``Variation seed`` alone is A1111's subseed, which Sfumato does not have."""
    out: Fields = {"variation_step": int(v)}
    if "Variation seed" in kv:
        out["variation_seed"] = int(kv["Variation seed"])
    return out


def _sampler_named(*names: str) -> Callable[[GenerateParams], bool]:
    return lambda p: p.sampler in names


def _uq_text(p: GenerateParams) -> str | None:
    u = p.uncertainty
    return f"{u.samples}/{u.skip}/{u.decodes}" if u is not None and u.map else None


def _variation_text(p: GenerateParams) -> str | None:
    u = p.uncertainty
    if u is None or u.variation_step is None:
        return None
    return f"{u.variation_step}/{u.variation_seed}"


def _eta_write(ddim: bool) -> Callable[[GenerateParams], object]:
    # A1111 writes DDIM's η as "Eta DDIM" and the k-diffusion samplers' as "Eta".
    return lambda p: _num(p.eta) if p.eta is not None and (p.sampler == "DDIM") == ddim else None


def _order_write(unipc: bool) -> Callable[[GenerateParams], object]:
    return lambda p: (
        p.solver_order if p.solver_order is not None and (p.sampler == "UniPC") == unipc else None
    )


#: The A1111 keys Sfumato reads and writes, in A1111's writing order.
ROWS: list[Row] = [
    Row("Steps", ("steps",), lambda v, kv: {"steps": int(v)}, lambda p: p.steps),
    # Kept as written: A1111 < 1.9 wrote "DPM++ 2M Karras", which the engine reads as an
    # alias, so a recipe writes back exactly as it came.
    Row("Sampler", ("sampler",), lambda v, kv: {"sampler": v.strip()}, lambda p: p.sampler),
    Row(
        "Schedule type",
        ("schedule", "timestep_spacing"),
        _schedule,
        lambda p: _schedule_label(p.schedule) if p.schedule != "default" else None,
    ),
    Row(
        "CFG scale",
        ("cfg_scale",),
        lambda v, kv: {"cfg_scale": float(v)},
        lambda p: _num(p.cfg_scale),
    ),
    Row("Seed", ("seed",), lambda v, kv: {"seed": int(v)}, lambda p: p.seed),
    Row("Size", ("width", "height"), _size, lambda p: f"{p.width}x{p.height}"),
    Row("Model", ("model",), lambda v, kv: {"model": v.strip()}, lambda p: p.model),
    Row(
        "Batch size",
        ("batch_size",),
        lambda v, kv: {"batch_size": int(v)},
        lambda p: p.batch_size if p.batch_size > 1 else None,
    ),
    Row("Eta DDIM", ("eta",), lambda v, kv: {"eta": float(v)}, _eta_write(ddim=True)),
    Row("Eta", ("eta",), lambda v, kv: {"eta": float(v)}, _eta_write(ddim=False)),
    Row("ETA", ("eta",), lambda v, kv: {"eta": float(v)}),
    Row(
        "Timestep spacing",
        ("timestep_spacing",),
        lambda v, kv: {"timestep_spacing": v.strip()},
        lambda p: p.timestep_spacing,
    ),
    Row(
        "UniPC order",
        ("solver_order",),
        lambda v, kv: {"solver_order": int(v)},
        _order_write(unipc=True),
    ),
    Row(
        "Solver order",
        ("solver_order",),
        lambda v, kv: {"solver_order": int(v)},
        _order_write(unipc=False),
    ),
    Row(
        "Calibrated",
        ("calibrated",),
        lambda v, kv: {"calibrated": v.strip().lower() in ("true", "1", "yes")},
        lambda p: "True" if p.calibrated else None,
    ),
    Row(
        "Uncertainty",
        ("uncertainty", "uncertainty_samples", "uncertainty_skip", "uncertainty_decodes"),
        _uncertainty,
        _uq_text,
    ),  # "S/k/M"
    # BayesDiff variations: "step/seed" (not A1111's "Variation seed", its subseed).
    Row("Uncertainty variation", ("variation_step", "variation_seed"), _variation, _variation_text),
    Row("Variation step", ("variation_step", "variation_seed"), _old_variation_step),
    # The prompt language (engine/prompts): clip skip, and what the prompt's <lora:…> tags and
    # embedding names used, by A1111's short hashes (the engine fills these in when it runs).
    Row(
        "Clip skip",
        ("clip_skip",),
        lambda v, kv: {"clip_skip": int(v)},
        lambda p: p.clip_skip if p.clip_skip != 1 else None,
    ),
    Row(
        "Lora hashes",
        ("lora_hashes",),
        lambda v, kv: {"lora_hashes": v.strip()},
        lambda p: p.lora_hashes or None,
    ),
    Row(
        "TI hashes",
        ("ti_hashes",),
        lambda v, kv: {"ti_hashes": v.strip()},
        lambda p: p.ti_hashes or None,
    ),
    # Flow models (docs/flow-models.md): Forge's keys for Flux's distilled guidance and the
    # shift; both rows read both keys into the one ``flow`` group.
    Row(
        "Distilled CFG Scale",
        ("flow",),
        lambda v, kv: {"flow": _flow(kv)},
        lambda p: _num(p.flow.guidance) if p.flow and p.flow.guidance is not None else None,
    ),
    Row(
        "Shift",
        ("flow",),
        lambda v, kv: {"flow": _flow(kv)},
        lambda p: _num(p.flow.shift) if p.flow and p.flow.shift is not None else None,
    ),
]
_BY_LABEL = {row.label: row for row in ROWS}

#: Keys that describe the image but restore nothing: never listed as "not restored".
INFORMATIONAL = frozenset(
    {
        "Model hash",
        "VAE hash",
        "Version",
        "Hashes",
        "Uncertainty score",
    }
)


# ------------------------------------------------------------------------------ flow samplers

#: Forge writes the samplers of flow models (SD3, Flux) with the ε-samplers' names: "Euler" on
#: Flux is Euler on the flow ODE. The same method for the other model family, both ways; used
#: for recipes (:func:`parse`) and by the window when the model's family changes.
FLOW_COUNTERPARTS = {
    "Euler": "Flow Euler",
    "Euler a": "Flow Euler",
    "Heun": "Flow Heun",
    "DPM++ 2M": "Flow DPM++ 2M",
    "UniPC": "Flow UniPC",
}
DIFFUSION_COUNTERPARTS = {
    "Flow Euler": "Euler",
    "Flow Heun": "Heun",
    "Flow DPM++ 2M": "DPM++ 2M",
    "Flow UniPC": "UniPC",
}
_LEGACY_SCHEDULE_SUFFIXES = (" Karras", " Exponential", " SGMUniform", " Simple")


def sampler_for(name: str, family: str) -> str:
    """The sampler that does what ``name`` does on a model of ``family`` ("flow" or
    "diffusion"): ``name`` itself when it already samples that family; "Flow Euler" for an
    ε-sampler with no flow version (its ODE is what SD3/Flux were published with)."""
    flow_name = name.startswith("Flow ")
    if family == "flow":
        if flow_name:
            return name
        for suffix in _LEGACY_SCHEDULE_SUFFIXES:  # "DPM++ 2M Karras" → "DPM++ 2M"
            name = name.removesuffix(suffix)
        return FLOW_COUNTERPARTS.get(name, "Flow Euler")
    return DIFFUSION_COUNTERPARTS.get(name, "Euler") if flow_name else name


def _to_family(data: Fields, family: str, notes: list[str]) -> None:
    """Map the recipe's sampler onto ``family`` (see :func:`sampler_for`), dropping the options
    flow samplers do not have, and say so in ``notes``."""
    name = str(data.get("sampler", ""))
    if not name:
        return
    new = sampler_for(name, family)
    if new == name:
        return
    data["sampler"] = new
    dropped = []
    for k in ("schedule", "timestep_spacing", "calibrated") if family == "flow" else ():
        value = data.pop(k, None)
        if value not in (None, "default", False):
            dropped.append(k)
    where = "a flow model (SD3/Flux)" if family == "flow" else "an SD 1/2/XL model"
    notes.append(
        f"Sampler {name} on {where} is {new} here"
        + (f" (without {', '.join(dropped)}, which flow samplers do not take)." if dropped else ".")
    )


def _schedule_label(schedule: str) -> str:
    from engine.protocol import SCHEDULES

    return SCHEDULES[schedule]


# ------------------------------------------------------------------------------ text

#: A1111's ``key: value`` pair (keys start with a word character; values quoted or up to ",").
_PAIR = re.compile(r'\s*(\w[\w \-/()+.]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')


def quote(v: object) -> str:
    s = str(v)
    return json.dumps(s) if ("," in s or ":" in s or '"' in s or "\n" in s) else s


def unquote(v: str) -> str:
    v = v.strip()
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        try:
            return str(json.loads(v))
        except ValueError:
            return v
    return v


def write(params: GenerateParams, *, model_name: str | None = None, seed: int | None = None) -> str:
    """A1111's ``parameters`` text for a recipe (``seed``/``model_name``: the image's own)."""
    pairs: list[tuple[str, object]] = []
    for row in ROWS:
        if row.write is None:
            continue
        if row.label == "Seed" and seed is not None:
            value: object = seed
        elif row.label == "Model":
            value = model_name or params.model
        else:
            value = row.write(params)
        if value is not None and value != "":
            pairs.append((row.label, value))
    text = params.prompt
    if params.negative_prompt:
        text += f"\nNegative prompt: {params.negative_prompt}"
    return text + "\n" + ", ".join(f"{k}: {quote(v)}" for k, v in pairs)


def split(text: str) -> tuple[str, str, dict[str, str]]:
    """(prompt, negative prompt, settings pairs) by A1111's rules (see the module docstring)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").strip().split("\n")
    settings = lines.pop() if len(_PAIR.findall(lines[-1])) >= 3 else ""
    prompt: list[str] = []
    negative: list[str] = []
    in_negative = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("Negative prompt:"):
            in_negative = True
            stripped = stripped[len("Negative prompt:") :].strip()
        (negative if in_negative else prompt).append(stripped)
    pairs = {k.strip(): unquote(v) for k, v in _PAIR.findall(settings)}
    return "\n".join(prompt), "\n".join(negative), pairs


@dataclass
class A1111Recipe:
    """What :func:`parse` made of a text: the recipe, which fields it set, what it adjusted or
    left out (sentences for the user), and the keys it did not restore."""

    params: GenerateParams
    fields: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    not_restored: list[str] = field(default_factory=list)


def parse(text: str, model_family: str | None = None) -> A1111Recipe:
    """Read A1111's ``parameters`` text; never raises on a value, only reports it.

    ``model_family`` ("flow" or "diffusion"), when the model the recipe will run on is known,
    maps the sampler onto it (Forge's "Euler" on Flux is "Flow Euler"); a text with Forge's flow
    keys ("Distilled CFG Scale", "Shift") is taken as a flow model's."""
    prompt, negative, pairs = split(text)
    data: Fields = {"prompt": prompt, "negative_prompt": negative}
    fields = {"prompt", "negative_prompt"}
    notes: list[str] = []
    not_restored: list[str] = []
    for label, value in pairs.items():
        if label == "Variation seed" and "Variation step" in pairs:
            continue  # Sfumato ≤ v1's BayesDiff variation: read with "Variation step"
        row = _BY_LABEL.get(label)
        if row is None or row.read is None:
            if label not in INFORMATIONAL:
                not_restored.append(label)
            continue
        try:
            data.update(row.read(value, pairs))
        except (ValueError, TypeError, KeyError):
            notes.append(f"{label}: {value!r} is not a value Sfumato reads; left as it was.")
            continue
        fields.update(f for f in row.fields if f in data)
    family = model_family or ("flow" if {"Distilled CFG Scale", "Shift"} & set(pairs) else None)
    if family is not None:
        _to_family(data, family, notes)
    params, adjusted = validate_leniently(data)
    notes += adjusted
    fields -= {n for n in fields if n not in data}
    return A1111Recipe(params, fields, notes, not_restored)


# ------------------------------------------------------------------------------ validation

_CLAMPED = {
    "steps": (1, 1000),
    "cfg_scale": (0.0, 100.0),
    "batch_size": (1, 16),
    "batch_count": (1, 100),
    "eta": (0.0, 1.0),
    "solver_order": (1, 4),
}


def validate_leniently(data: Fields) -> tuple[GenerateParams, list[str]]:
    """``GenerateParams(**data)``, with each value it refuses adjusted to the nearest usable one
    (or dropped to its default) instead of refusing the whole recipe; the notes say which."""
    from pydantic import ValidationError

    from engine.protocol import MAX_SEED, MAX_SIDE, GenerateParams

    data = dict(data)
    notes: list[str] = []
    for _ in range(len(data) + 1):
        try:
            return GenerateParams(**data), notes
        except ValidationError as exc:
            bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            first = {
                str(e["loc"][0]): str(e["msg"]).removeprefix("Value error, ")
                for e in reversed(exc.errors())
                if e["loc"]
            }
        if not bad or not bad <= set(data):
            break
        if {"width", "height"} & bad:
            w, h = data.get("width", 512), data.get("height", 512)
            nw, nh = (_snap8(v, MAX_SIDE) if isinstance(v, int) else 512 for v in (w, h))
            data["width"], data["height"] = nw, nh
            notes.append(
                f"Size {w}×{h}: Sfumato makes sides in multiples of 8 up to "
                f"{MAX_SIDE}; using {nw}×{nh}."
            )
            bad -= {"width", "height"}
        for name in sorted(bad):
            value = data[name]
            if name in ("seed", "variation_seed") and isinstance(value, int) and value >= 0:
                data[name] = value % (MAX_SEED + 1)
                notes.append(
                    f"{_label(name)} {value} is larger than Sfumato's 32-bit seeds; "
                    f"using {data[name]} (its low 32 bits): the image will differ."
                )
            elif name in _CLAMPED and isinstance(value, int | float):
                lo, hi = _CLAMPED[name]
                data[name] = type(value)(min(max(value, lo), hi))
                notes.append(
                    f"{_label(name)} {value:g} is outside {lo:g}–{hi:g}; using {data[name]:g}."
                )
            else:
                del data[name]
                notes.append(
                    f"{_label(name)} {value!r} cannot be used ({first.get(name, '')}); "
                    "left as it was."
                )
    # Only reached if adjusting did not converge (it always should): the plain recipe.
    return GenerateParams(
        prompt=str(data.get("prompt", "")), negative_prompt=str(data.get("negative_prompt", ""))
    ), notes


def _snap8(v: int, hi: int) -> int:
    return max(8, min(hi - hi % 8, (v + 4) // 8 * 8))


def _label(name: str) -> str:
    for row in ROWS:
        if name in row.fields and row.write is not None:
            return row.label
    return name.replace("_", " ").capitalize()
