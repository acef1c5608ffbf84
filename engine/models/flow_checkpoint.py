"""What a single-file SD3/SD3.5 or Flux.1 checkpoint needs to load, from headers alone.

People download these models as one ``.safetensors`` file that often lacks parts: Flux.1's
``flux1-dev.safetensors`` is the transformer only (its autoencoder is ``ae.safetensors``, its text
encoders ``clip_l.safetensors`` and ``t5xxl_fp16.safetensors``, kept beside it as ComfyUI users
do); ``sd3_medium.safetensors`` has no text encoders, ``sd3_medium_incl_clips`` no T5. No
checkpoint carries its configs or tokenizers. :func:`plan` reads the checkpoint's header and the
headers of the files around it (never tensor data, so the model list stays fast) and says:

- which architecture and size it is, and so which config folder under ``resources/configs``
  builds it (or ``<stem>.config/`` beside it, a diffusers config folder for other sizes);
- where each part comes from: the file itself, a separate file found beside it, or nowhere;
- where the T5 tokenizer comes from: T5's SentencePiece vocabulary ships with no package we can
  install (DATA.md), so the user puts ``t5_tokenizer.json`` beside the checkpoint (the
  ``tokenizer.json`` of FLUX.1's ``tokenizer_2`` folder or SD3's ``tokenizer_3``); it is checked
  here;
- what is missing, as a sentence that names the file to add (``FlowPlan.problem``), and what
  the model runs without (``FlowPlan.note``).

engine/models/flow_single_file.py loads what the plan says; docs/flow-models.md is the user's
side.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import ModelLoadError
from engine.models.single_file import CONFIGS, read_safetensors_header

ORIGINAL = "model.diffusion_model."
#: Prefixes of the text encoders inside SD3 single files (Stability's layout).
IN_FILE_TEXT = {
    "clip_l": "text_encoders.clip_l.transformer.",
    "clip_g": "text_encoders.clip_g.transformer.",
    "t5": "text_encoders.t5xxl.transformer.",
}
IN_FILE_VAE = ("first_stage_model.", "vae.")
T5_TOKENIZER = "t5_tokenizer.json"
T5_TOKENIZER_HELP = (
    f"put T5's tokenizer beside it as {T5_TOKENIZER}: the tokenizer.json from the "
    "tokenizer_2 folder of FLUX.1-dev/schnell (or tokenizer_3 of SD3; ComfyUI keeps the same file "
    "as comfy/text_encoders/t5_tokenizer/tokenizer.json). No installable package ships it"
)
#: Where separate parts are looked for, relative to the checkpoint's folder and its parent
#: (ComfyUI keeps models/checkpoints, models/unet, models/vae, models/clip, models/text_encoders).
PART_FOLDERS = ("", "vae", "clip", "text_encoders")
_FP8 = ("F8_E4M3", "F8_E5M2")
_MAX_CANDIDATES = 200


@dataclass(frozen=True)
class FlowPlan:
    """How to assemble the pipeline of one flow checkpoint (see the module docstring).

    A part's source is ``"file"`` (inside the checkpoint), a path (a separate file) or ``""``
    (not found)."""

    path: Path
    architecture: str  # "sd3" or "flux"
    variant: (
        str  # "sd3-medium", "sd3.5-medium", "sd3.5-large", "flux-dev", "flux-schnell", "custom"
    )
    config_dir: Path | None
    transformer_subfolder: str = "transformer"
    scheduler_subfolder: str = "scheduler"
    parts: dict[str, str] = field(default_factory=dict)  # vae, clip_l, clip_g (sd3), t5
    t5_tokenizer: str = ""  # a tokenizer.json path, or "" (none found)
    fp8: bool = False
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def problem(self) -> str:
        return " ".join(self.problems)

    @property
    def note(self) -> str:
        return " ".join(self.notes)

    @property
    def uses_t5(self) -> bool:
        return bool(self.parts.get("t5")) and bool(self.t5_tokenizer)


# ---------------------------------------------------------------------------------------------
# Classifying headers


def flow_architecture(shapes: dict[str, list[int]]) -> str:
    """'sd3' or 'flux' when the tensor names are an MMDiT's (bare or under
    ``model.diffusion_model.``), else ''."""
    for key in shapes:
        bare = key.removeprefix(ORIGINAL)
        if bare.startswith("joint_blocks."):
            return "sd3"
        if bare.startswith("double_blocks."):
            return "flux"
    return ""


def part_role(shapes: dict[str, list[int]]) -> tuple[str, int]:
    """(role, width) of a separate component file: ``("vae", latent channels)``,
    ``("clip", hidden size)``, ``("t5", d_model)``, or ``("", 0)`` for anything else."""
    for key, shape in shapes.items():
        if key == "decoder.conv_in.weight" and len(shape) == 4:
            return "vae", int(shape[1])
        if key.endswith("embeddings.position_embedding.weight") and not key.startswith(
            ("text_encoders.", "cond_stage_model.", "conditioner.")
        ):
            return "clip", int(shape[-1])
        if key.endswith("encoder.block.0.layer.0.SelfAttention.q.weight") and not key.startswith(
            "text_encoders."
        ):
            return "t5", int(shape[-1])
    return "", 0


def _blocks(shapes: dict[str, list[int]], name: str) -> set[int]:
    pattern = re.compile(rf"(?:{re.escape(ORIGINAL)})?{name}\.(\d+)\.")
    return {int(m.group(1)) for k in shapes if (m := pattern.match(k))}


def _shape(shapes: dict[str, list[int]], key: str) -> list[int] | None:
    return shapes.get(key) or shapes.get(ORIGINAL + key)


def _variant(arch: str, shapes: dict[str, list[int]], label: str) -> tuple[str, str, str]:
    """(variant, transformer subfolder, scheduler subfolder) of ``resources/configs/<arch>``;
    ``("custom", …)`` for sizes no shipped config has. Raises for variants that cannot run."""
    if arch == "sd3":
        n = len(_blocks(shapes, "joint_blocks"))
        dual = any(".x_block.attn2." in k for k in shapes)
        qk_norm = any(".attn.ln_q." in k for k in shapes)
        width = (_shape(shapes, "context_embedder.weight") or [0])[0]
        if dual and n == 24 and width == 1536:
            return "sd3.5-medium", "transformer_sd35_medium", "scheduler"
        if qk_norm and n == 38 and width == 2432:
            return "sd3.5-large", "transformer_sd35_large", "scheduler"
        if not qk_norm and n == 24 and width == 1536:
            return "sd3-medium", "transformer", "scheduler"
        return "custom", "transformer", "scheduler"
    img_in = _shape(shapes, "img_in.weight") or [0, 0]
    if img_in[1] in (384, 128):
        kind = "Fill (inpainting)" if img_in[1] == 384 else "Depth"
        raise ModelLoadError(
            f"{label} is a FLUX.1 {kind} model, which needs an image beside the prompt; Sfumato "
            "runs FLUX.1-dev and -schnell (text to image).",
            field="model",
        )
    guided = any(k.removeprefix(ORIGINAL).startswith("guidance_in.") for k in shapes)
    n_double, n_single = (
        len(_blocks(shapes, "double_blocks")),
        len(_blocks(shapes, "single_blocks")),
    )
    if img_in[0] != 3072 or (n_double, n_single) != (19, 38):
        return "custom", "transformer", "scheduler"
    if guided:
        return "flux-dev", "transformer", "scheduler"
    return "flux-schnell", "transformer_schnell", "scheduler_schnell"


# ---------------------------------------------------------------------------------------------
# Finding the parts


def _config(folder: Path, name: str) -> dict:
    try:
        return json.loads((folder / name / "config.json").read_text())
    except (OSError, ValueError):
        return {}


def expected_widths(arch: str, config_dir: Path) -> dict[str, int]:
    """Widths the parts must have to fit the configs: {"vae": latent channels, "clip_l": …}."""
    out = {
        "vae": int(_config(config_dir, "vae").get("latent_channels", 16)),
        "clip_l": int(_config(config_dir, "text_encoder").get("hidden_size", 768)),
    }
    if arch == "sd3":
        out["clip_g"] = int(_config(config_dir, "text_encoder_2").get("hidden_size", 1280))
        out["t5"] = int(_config(config_dir, "text_encoder_3").get("d_model", 4096))
    else:
        out["t5"] = int(_config(config_dir, "text_encoder_2").get("d_model", 4096))
    return out


def search_folders(checkpoint: Path) -> list[Path]:
    """The checkpoint's folder and its parent, each with its vae/clip/text_encoders folders."""
    out: list[Path] = []
    for base in (checkpoint.parent, checkpoint.parent.parent):
        for sub in PART_FOLDERS:
            folder = base / sub if sub else base
            if folder.is_dir() and folder not in out:
                out.append(folder)
    return out


#: (path, mtime, size) -> (role, width): a models folder of many multi-MB-header checkpoints is
#: read once, not on every listing of every flow checkpoint beside them.
_ROLES: dict[tuple[str, int, int], tuple[str, int]] = {}


def _file_role(path: Path) -> tuple[str, int]:
    try:
        st = path.stat()
    except OSError:
        return "", 0
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _ROLES:
        try:
            tensors, _ = read_safetensors_header(path)
            _ROLES[key] = part_role({k: s for k, (_d, s) in tensors.items()})
        except ModelLoadError:
            _ROLES[key] = ("", 0)
    return _ROLES[key]


def _candidates(checkpoint: Path) -> list[tuple[Path, str, int]]:
    """(path, role, width) of the separate part files near ``checkpoint``."""
    found: list[tuple[Path, str, int]] = []
    seen = 0
    for folder in search_folders(checkpoint):
        try:
            files = sorted(folder.glob("*.safetensors"))
        except OSError:
            continue
        for f in files:
            if f == checkpoint or seen >= _MAX_CANDIDATES:
                continue
            seen += 1
            role, width = _file_role(f)
            if role:
                found.append((f, role, width))
    return found


def _preference(path: Path, role: str) -> tuple[int, int, str]:
    """Sort key: a name that says the role first, then 16/32-bit before fp8, then the name."""
    name = path.name.lower()
    hints = {"vae": ("ae.", "vae"), "clip_l": ("clip_l",), "clip_g": ("clip_g",), "t5": ("t5",)}[
        role
    ]
    return (0 if any(h in name for h in hints) else 1, 1 if "fp8" in name else 0, name)


def find_part(
    checkpoint: Path, role: str, width: int, candidates: list[tuple[Path, str, int]] | None = None
) -> Path | None:
    """The separate file that gives ``role`` ("vae", "clip_l", "clip_g", "t5") at ``width``."""
    kind = "clip" if role.startswith("clip") else role
    fits = [
        p
        for p, r, w in (candidates if candidates is not None else _candidates(checkpoint))
        if r == kind and w == width
    ]
    if role.startswith("clip"):  # CLIP-L and -G differ in width; a name settles equal widths
        other = "clip_g" if role == "clip_l" else "clip_l"
        fits = [p for p in fits if other not in p.name.lower()]
    return min(fits, key=lambda p: _preference(p, role)) if fits else None


def find_t5_tokenizer(checkpoint: Path, config_dir: Path | None, arch: str) -> Path | None:
    """A T5 ``tokenizer.json``: the config folder's own, else ``t5_tokenizer.json`` (or
    ``t5_tokenizer/tokenizer.json``) beside the checkpoint or its parts."""
    if config_dir is not None:
        own = config_dir / ("tokenizer_3" if arch == "sd3" else "tokenizer_2") / "tokenizer.json"
        if own.is_file():
            return own
    for folder in search_folders(checkpoint):
        for candidate in (folder / T5_TOKENIZER, folder / "t5_tokenizer" / "tokenizer.json"):
            if candidate.is_file():
                return candidate
    return None


def check_t5_tokenizer(path: Path, vocab_rows: int | None = None) -> str:
    """'' when ``path`` is a T5 (SentencePiece unigram) ``tokenizer.json`` whose ids fit an
    embedding of ``vocab_rows`` rows, else what is wrong with it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        model = data["model"]
        vocab = model["vocab"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"{path} is not a tokenizer.json ({type(e).__name__}: {e})"
    if model.get("type") != "Unigram":
        return (
            f"{path} is a {model.get('type', 'unknown')} tokenizer, not T5's (a SentencePiece "
            "unigram model)"
        )
    pieces = {p[0] for p in vocab if isinstance(p, list) and p}
    added = {t.get("content") for t in data.get("added_tokens", []) if isinstance(t, dict)}
    if not {"</s>", "<pad>"} <= pieces | added:
        return f"{path} lacks T5's </s> and <pad> tokens: it is another model's tokenizer"
    size = len(vocab) + len([t for t in added if t not in pieces])
    if vocab_rows is not None and size > vocab_rows:
        return (
            f"{path} has {size} tokens but the T5 encoder only {vocab_rows}: it is another "
            "model's tokenizer"
        )
    return ""


# ---------------------------------------------------------------------------------------------
# The plan


def _sidecar(path: Path) -> Path:
    return path.with_name(path.stem + ".config")


def plan(path: Path) -> FlowPlan:
    """Everything :func:`engine.models.flow_single_file.load_flow_single_file` needs to know,
    from headers only. Raises :class:`ModelLoadError` when ``path`` is not an SD3/Flux file or
    is a variant that cannot run."""
    path = Path(path)
    tensors, _meta = read_safetensors_header(path)
    shapes = {k: s for k, (_d, s) in tensors.items()}
    arch = flow_architecture(shapes)
    if not arch:
        raise ModelLoadError(f"{path.name} is not an SD3 or Flux checkpoint.", field="model")
    label = path.name
    variant, t_sub, s_sub = _variant(arch, shapes, label)
    problems: list[str] = []
    notes: list[str] = []
    sidecar = _sidecar(path)
    if sidecar.is_dir():
        config_dir: Path | None = sidecar
        t_sub, s_sub = "transformer", "scheduler"
        notes.append(f"configs from {sidecar.name}/.")
    elif variant == "custom":
        config_dir = None
        known = (
            "SD3-medium, SD3.5-medium and SD3.5-large"
            if arch == "sd3"
            else "FLUX.1-dev and -schnell"
        )
        problems.append(
            f"{label} is an {arch.upper()} model of a size Sfumato has no config for "
            f"(it knows {known}): put its diffusers config folder beside it as "
            f"{sidecar.name}/."
        )
    else:
        config_dir = CONFIGS / arch
    fp8 = any(d in _FP8 for d, _s in tensors.values())
    if fp8:
        notes.append("fp8 weights, upcast to the compute dtype on load.")

    parts: dict[str, str] = {}
    widths = expected_widths(arch, config_dir) if config_dir is not None else {}
    candidates = _candidates(path) if widths else []
    roles = ("vae", "clip_l", "clip_g", "t5") if arch == "sd3" else ("vae", "clip_l", "t5")
    for role in roles:
        inside = (
            any(k.startswith(IN_FILE_VAE) for k in shapes)
            if role == "vae"
            else any(k.startswith(IN_FILE_TEXT[role]) for k in shapes)
        )
        if inside:
            parts[role] = "file"
            continue
        found = find_part(path, role, widths[role], candidates) if widths else None
        parts[role] = str(found) if found else ""
        if found is not None:
            fp8 = fp8 or "fp8" in found.name.lower()
    tokenizer = find_t5_tokenizer(path, config_dir, arch) if config_dir is not None else None
    t5_rows = None
    if parts.get("t5") and parts["t5"] != "file":
        t5_tensors, _ = read_safetensors_header(Path(parts["t5"]))
        t5_rows = next(
            (s[0] for k, (_d, s) in t5_tensors.items() if k.endswith("shared.weight")), None
        )
    elif parts.get("t5") == "file":
        t5_rows = (shapes.get(IN_FILE_TEXT["t5"] + "shared.weight") or [None])[0]
    tokenizer_problem = check_t5_tokenizer(tokenizer, t5_rows) if tokenizer else ""

    if config_dir is not None:
        files = {
            "vae": "ae.safetensors",
            "clip_l": "clip_l.safetensors",
            "clip_g": "clip_g.safetensors",
            "t5": "t5xxl_fp16.safetensors",
        }
        what = {
            "vae": "autoencoder (VAE)",
            "clip_l": "CLIP-L text encoder",
            "clip_g": "CLIP-G text encoder",
            "t5": "T5-XXL text encoder",
        }
        required = ("vae", "clip_l", "clip_g") if arch == "sd3" else ("vae", "clip_l", "t5")
        lacking = [r for r in required if not parts.get(r)]
        if lacking:
            problems.append(
                f"{label} has no {', '.join(what[r] for r in lacking)} and none was found beside "
                f"it: put {', '.join(files[r] for r in lacking)} (from the model's download page) "
                "into the same folder."
            )
        if parts.get("t5") and tokenizer is None:
            if arch == "flux":
                problems.append(f"{label} needs T5's tokenizer: {T5_TOKENIZER_HELP}.")
            else:
                notes.append(
                    f"runs without T5 (its prompts follow less closely) until you "
                    f"{T5_TOKENIZER_HELP}."
                )
        elif parts.get("t5") and tokenizer_problem:
            (problems if arch == "flux" else notes).append(tokenizer_problem + ".")
        elif arch == "sd3" and not parts.get("t5"):
            notes.append(
                "runs without T5 (as SD3's incl_clips files are meant to); put "
                "t5xxl_fp16.safetensors beside it for closer prompt following."
            )
    return FlowPlan(
        path=path,
        architecture=arch,
        variant=variant,
        config_dir=config_dir,
        transformer_subfolder=t_sub,
        scheduler_subfolder=s_sub,
        parts=parts,
        t5_tokenizer=str(tokenizer) if tokenizer and not tokenizer_problem else "",
        fp8=fp8,
        problems=tuple(problems),
        notes=tuple(notes),
    )


def is_flow_part(path: Path) -> bool:
    """Whether ``path`` is a separate part of flow models (a 16-channel autoencoder, a CLIP or
    T5 text encoder) rather than a model: the model list leaves these out."""
    role, width = _file_role(Path(path))
    return role in ("clip", "t5") or (role == "vae" and width == 16)
