"""Load Stable Diffusion single-file checkpoints (``.safetensors``) completely offline.

A single-file checkpoint is what A1111/ComfyUI/CivitAI users have: one ``.safetensors`` file with
the original LDM/CompVis key names (``model.diffusion_model.…`` for the UNet,
``first_stage_model.…`` for the VAE, ``cond_stage_model.…`` or ``conditioner.embedders.…`` for
the text encoders). It carries weights only, no configs and no tokenizer, and diffusers'
``from_single_file`` would fetch those from the Hugging Face hub. Here they come from
``resources/configs/<arch>/`` (hand-written from the published architectures, checked by
parameter count) and ``resources/configs/clip_bpe/`` (the CLIP BPE vocabulary, built by
``resources/configs/make_tokenizer.py``), and the weights are converted with diffusers' own
conversion helpers (:mod:`diffusers.loaders.single_file_utils`). Nothing touches the network.

Two entry points, used by the model registry and loader:

- :func:`detect_architecture` reads only the file's header (key names and shapes) and says
  ``"sd1"``, ``"sd2"`` or ``"sdxl"``; :func:`inspect_checkpoint` gives the details (prediction
  type hints, why a file is refused).
- :func:`load_single_file` builds a ``StableDiffusionPipeline`` or ``StableDiffusionXLPipeline``.

Every failure is an :class:`engine.errors.ModelLoadError` whose message says what to do.
"""

from __future__ import annotations

import gzip
import inspect
import json
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ModelLoadError

if TYPE_CHECKING:
    import torch
    from diffusers import DiffusionPipeline
    from transformers import CLIPTokenizer

CONFIGS = Path(__file__).resolve().parents[2] / "resources" / "configs"
CLIP_BPE = CONFIGS / "clip_bpe"
#: architecture -> folder under ``resources/configs``
CONFIG_DIRS: dict[str, str] = {"sd1": "sd15", "sd2": "sd2", "sdxl": "sdxl"}
ARCHITECTURES = tuple(CONFIG_DIRS)
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
_PREDICTION_ALIASES = {
    "eps": "epsilon",
    "v": "v_prediction",
    "v-prediction": "v_prediction",
    "vpred": "v_prediction",
    "v_pred": "v_prediction",
}
_PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
_MAX_HEADER = 100 * 1024 * 1024  # the safetensors format's own limit

UNET = "model.diffusion_model."
VAE = "first_stage_model."
CLIP_SD1 = "cond_stage_model.transformer."
OPENCLIP_SD2 = "cond_stage_model.model."
CLIP_XL = "conditioner.embedders.0.transformer."
OPENCLIP_XL = "conditioner.embedders.1.model."
OPENCLIP_XL_REFINER = "conditioner.embedders.0.model."

_SUPPORTED = "Sfumato loads Stable Diffusion 1.x, 2.x and SDXL checkpoints"


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint's header says about it.

    ``architecture`` is ``"sd1"``, ``"sd2"`` or ``"sdxl"``. ``prediction_type`` is the file's own
    hint (``"epsilon"`` / ``"v_prediction"``) or None when it gives none; ``prediction_source``
    says where the hint came from. ``unsupported`` is a message when the file is a recognised
    Stable Diffusion variant that cannot be loaded for text-to-image (inpainting, SDXL refiner, …).
    """

    architecture: str
    prediction_type: str | None = None
    prediction_source: str = ""
    zero_terminal_snr: bool = False
    in_channels: int = 4
    context_dim: int | None = None
    has_vae: bool = True
    has_text_encoder: bool = True
    unsupported: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def default_prediction_type(self) -> str:
        """The prediction type to use when the user does not choose one."""
        if self.prediction_type:
            return self.prediction_type
        # SD 2.x: the 768-px models (2.0-v, 2.1, most fine-tunes) predict v; the 512-px
        # "-base" ones predict noise. Without a hint, follow diffusers and take v (the
        # architecture's default_prediction, engine/architecture.py).
        from engine.architecture import Architecture

        return Architecture.parse(self.architecture).facts.default_prediction


# ---------------------------------------------------------------------------------------------
# Header reading and classification


def read_safetensors_header(path: Path) -> tuple[dict[str, tuple[str, list[int]]], dict[str, str]]:
    """Tensor names -> (dtype, shape), and the ``__metadata__``, read from the header only.

    Checks that the header parses and that every tensor's data lies inside the file, so a
    truncated download is reported here without reading gigabytes.
    """
    path = Path(path)
    corrupt = f"{path.name} is not a valid safetensors file (truncated or corrupt): re-download it"
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ModelLoadError(corrupt, field="model")
            (n,) = struct.unpack("<Q", head)
            if n < 2 or n > _MAX_HEADER or 8 + n > size:
                raise ModelLoadError(corrupt, field="model")
            raw = f.read(n)
    except OSError as e:
        raise ModelLoadError(f"Cannot read {path}: {e.strerror or e}", field="model") from e
    try:
        header = json.loads(raw.decode("utf-8").rstrip(" \x00"))
        if not isinstance(header, dict):
            raise TypeError("header is not an object")
        metadata = header.pop("__metadata__", None) or {}
        tensors: dict[str, tuple[str, list[int]]] = {}
        end = 0
        for name, spec in header.items():
            start, stop = (int(x) for x in spec["data_offsets"])
            if not 0 <= start <= stop:
                raise ValueError(f"bad offsets for {name}")
            end = max(end, stop)
            tensors[name] = (str(spec["dtype"]), [int(d) for d in spec["shape"]])
    except (ValueError, KeyError, TypeError) as e:  # UnicodeDecodeError is a ValueError
        raise ModelLoadError(corrupt, field="model") from e
    if 8 + n + end > size:
        raise ModelLoadError(corrupt, field="model")
    return tensors, {str(k): str(v) for k, v in dict(metadata).items()}


def _prediction_hint(
    keys: Mapping[str, Any], metadata: Mapping[str, str], name: str, arch: str
) -> tuple[str | None, str]:
    """A prediction type the file itself suggests, and where it was found."""
    spec = metadata.get("modelspec.prediction_type", "").strip().lower()
    if spec:
        pred = _PREDICTION_ALIASES.get(spec, spec)
        if pred in PREDICTION_TYPES:
            return pred, "modelspec.prediction_type metadata"
    spec_arch = metadata.get("modelspec.architecture", "").lower()
    if spec_arch.endswith("-v") or "-v/" in spec_arch or "v-prediction" in spec_arch:
        return "v_prediction", "modelspec.architecture metadata"
    if "v_pred" in keys:  # the marker key ComfyUI and its trainers write
        return "v_prediction", "v_pred key"
    if arch == "sd2":
        stem = name.lower()
        # Stability's names: 768-v-ema / v2-1_768-ema-pruned (v), 512-base-ema / v2-1_512-… (eps)
        if re.search(r"(?:^|[^a-z0-9])(?:768(?:-?v)?|v-?pred(?:iction)?)(?:[^a-z0-9]|$)", stem):
            return "v_prediction", "file name"
        if re.search(r"(?:^|[^a-z0-9])512(?:-?base)?(?:[^a-z0-9]|$)", stem):
            return "epsilon", "file name"
    return None, ""


def classify_keys(
    shapes: Mapping[str, Sequence[int]], metadata: Mapping[str, str] | None = None, name: str = ""
) -> CheckpointInfo:
    """Classify a checkpoint from its tensor names and shapes (no tensor data needed).

    Raises :class:`ModelLoadError` when the keys are not a Stable Diffusion checkpoint.
    """
    metadata = dict(metadata or {})
    label = name or "This file"
    keys = shapes.keys()
    unet_keys = [k for k in keys if k.startswith(UNET)]
    if not unet_keys:
        raise ModelLoadError(_not_sd_message(label, keys), field="model")

    dit = any(
        k.startswith(UNET + p)
        for k in unet_keys[:50]
        for p in ("joint_blocks", "double_blocks", "blocks.")
    )
    if dit or f"{UNET}input_blocks.0.0.weight" not in shapes:
        raise ModelLoadError(
            f"{label} is not a Stable Diffusion UNet checkpoint (it looks like SD3, Flux or "
            f"another transformer model). {_SUPPORTED}.",
            field="model",
        )

    in_channels = int(shapes[f"{UNET}input_blocks.0.0.weight"][1])
    context_dim = None
    for k in unet_keys:
        if k.endswith("attn2.to_k.weight"):
            context_dim = int(shapes[k][-1])
            break
    proj_in_ndim = next((len(shapes[k]) for k in unet_keys if k.endswith(".proj_in.weight")), None)
    has_label_emb = f"{UNET}label_emb.0.0.weight" in shapes

    if any(k.startswith(OPENCLIP_XL) for k in keys) or any(k.startswith(CLIP_XL) for k in keys):
        arch = "sdxl"
    elif any(k.startswith(OPENCLIP_XL_REFINER) for k in keys):
        arch = "sdxl_refiner"
    elif any(k.startswith(OPENCLIP_SD2) for k in keys):
        arch = "sd2"
    elif any(k.startswith(CLIP_SD1) for k in keys):
        arch = "sd1"
    elif has_label_emb:  # UNet-only SDXL file: its label embedding takes the size/crop conditioning
        label_in = int(shapes[f"{UNET}label_emb.0.0.weight"][-1])
        arch = "sdxl_refiner" if label_in == 2560 else "sdxl"
    elif context_dim == 1024 or proj_in_ndim == 2:  # SD 2 uses linear proj_in, SD 1 1x1 convs
        arch = "sd2"
    else:
        arch = "sd1"

    unsupported = None
    if arch == "sdxl_refiner":
        arch = "sdxl"
        unsupported = (
            f"{label} is an SDXL refiner checkpoint, which only refines images from an SDXL base "
            "model; load an SDXL base checkpoint instead."
        )
    elif has_label_emb and arch != "sdxl":
        unsupported = (
            f"{label} is a class-conditioned Stable Diffusion variant (upscaler or unCLIP), which "
            "cannot generate from a prompt alone. " + _SUPPORTED + " for text-to-image."
        )
    elif in_channels == 9:
        unsupported = (
            f"{label} is an inpainting checkpoint; Sfumato does not inpaint yet. Use the "
            "non-inpainting version of this model."
        )
    elif in_channels == 8:
        unsupported = f"{label} is an InstructPix2Pix-style image-editing checkpoint. {_SUPPORTED}."
    elif in_channels != 4:
        unsupported = (
            f"{label} has a UNet with {in_channels} input channels, not a text-to-image model. "
            f"{_SUPPORTED}."
        )

    pred, source = _prediction_hint(shapes, metadata, Path(name).stem if name else "", arch)
    text_prefixes = {"sd1": (CLIP_SD1,), "sd2": (OPENCLIP_SD2,), "sdxl": (CLIP_XL, OPENCLIP_XL)}
    has_te = all(any(k.startswith(p) for k in keys) for p in text_prefixes[arch])
    has_vae = any(k.startswith(VAE) for k in keys) or any(k.startswith("vae.") for k in keys)
    return CheckpointInfo(
        architecture=arch,
        prediction_type=pred,
        prediction_source=source,
        zero_terminal_snr="ztsnr" in shapes,
        in_channels=in_channels,
        context_dim=context_dim,
        has_vae=has_vae,
        has_text_encoder=has_te,
        unsupported=unsupported,
        metadata=metadata,
    )


def _not_sd_message(label: str, keys: Any) -> str:
    sample = list(keys)[:200]
    if any(
        k.startswith(("lora_unet_", "lora_te", "lora_")) or ".lora_" in k or "lora_down" in k
        for k in sample
    ):
        return (
            f"{label} is a LoRA, not a full model: load a Stable Diffusion checkpoint and apply "
            "the LoRA on top of it."
        )
    if any(k.startswith(("down_blocks.", "up_blocks.", "mid_block.")) for k in sample):
        return (
            f"{label} holds diffusers-format weights of a single component: put it in its "
            "diffusers model folder (with model_index.json) instead of loading it as a checkpoint."
        )
    if any(k.startswith(("encoder.down.", "decoder.up.")) for k in sample):
        return f"{label} is a standalone VAE, not a full Stable Diffusion checkpoint."
    if any(k.startswith("string_to_param") or k == "emb_params" for k in sample):
        return f"{label} is a textual-inversion embedding, not a full Stable Diffusion checkpoint."
    return (
        f"{label} does not look like a Stable Diffusion checkpoint (no UNet weights found). "
        f"{_SUPPORTED} in .safetensors format."
    )


def _check_suffix(path: Path) -> None:
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise ModelLoadError(
            f"{path.name}: .ckpt pickles are not loaded for safety (they can run code): convert it "
            "to .safetensors (most model pages offer a .safetensors download), then load that.",
            field="model",
        )


def inspect_checkpoint(path: Path) -> CheckpointInfo:
    """Read ``path``'s header and classify it (see :func:`classify_keys`)."""
    path = Path(path)
    _check_suffix(path)
    if not path.is_file():
        raise ModelLoadError(f"{path} does not exist or is not a file.", field="model")
    tensors, metadata = read_safetensors_header(path)
    return classify_keys({k: shape for k, (_, shape) in tensors.items()}, metadata, path.name)


def detect_architecture(path: Path) -> str:
    """``"sd1"``, ``"sd2"`` or ``"sdxl"`` for a single-file checkpoint, from its header only.

    Raises :class:`ModelLoadError` for files that are not a (complete, safetensors) Stable
    Diffusion checkpoint.
    """
    return inspect_checkpoint(path).architecture


# ---------------------------------------------------------------------------------------------
# Tokenizers


@lru_cache(maxsize=1)
def _clip_bpe() -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    try:
        vocab = json.loads(gzip.decompress((CLIP_BPE / "vocab.json.gz").read_bytes()))
        lines = gzip.decompress((CLIP_BPE / "merges.txt.gz").read_bytes()).decode("utf-8")
    except OSError as e:
        raise ModelLoadError(
            f"The CLIP tokenizer files are missing from {CLIP_BPE}: reinstall Sfumato.",
        ) from e
    merges = tuple(
        tuple(line.split()) for line in lines.splitlines()[1:] if line and not line.startswith("#")
    )
    return vocab, merges  # type: ignore[return-value]


def clip_tokenizer(folder: Path) -> CLIPTokenizer:
    """A ``CLIPTokenizer`` for the tokenizer folder ``folder``.

    A folder with its own vocabulary (``tokenizer.json`` or ``vocab.json``) is loaded as is;
    otherwise the shared CLIP BPE from ``resources/configs/clip_bpe`` is used with the special
    tokens of ``folder/tokenizer_config.json`` (SD 2.x/SDXL's OpenCLIP tokenizer pads with ``!``).
    """
    from transformers import CLIPTokenizer

    folder = Path(folder)
    if (folder / "tokenizer.json").is_file() or (folder / "vocab.json").is_file():
        return CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    vocab, merges = _clip_bpe()
    return CLIPTokenizer(
        vocab=dict(vocab),
        merges=list(merges),
        bos_token=cfg.get("bos_token", "<|startoftext|>"),
        eos_token=cfg.get("eos_token", "<|endoftext|>"),
        unk_token=cfg.get("unk_token", "<|endoftext|>"),
        pad_token=cfg.get("pad_token", "<|endoftext|>"),
        model_max_length=int(cfg.get("model_max_length", 77)),
    )


# ---------------------------------------------------------------------------------------------
# Loading


def normalize_prediction_type(value: str | None) -> str | None:
    """``"v"`` / ``"v-prediction"`` / … -> ``"v_prediction"``; None stays None."""
    if value is None or value == "":
        return None
    v = _PREDICTION_ALIASES.get(value.strip().lower(), value.strip().lower())
    if v not in PREDICTION_TYPES:
        raise ModelLoadError(
            f"Unknown prediction type {value!r}: use one of {', '.join(PREDICTION_TYPES)}.",
            field="prediction_type",
        )
    return v


def _normalize_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Key spellings some checkpoints use -> the ones diffusers' converters expect."""
    old_clip = CLIP_SD1 + "embeddings."
    if any(k.startswith(old_clip) for k in state) and not any(
        k.startswith(CLIP_SD1 + "text_model.") for k in state
    ):  # CLIP saved by transformers < 4.x: no ``text_model.`` level
        state = {
            (CLIP_SD1 + "text_model." + k[len(CLIP_SD1) :] if k.startswith(CLIP_SD1) else k): v
            for k, v in state.items()
        }
    if not any(k.startswith(VAE) for k in state) and any(k.startswith("vae.") for k in state):
        state = {(VAE + k[4:] if k.startswith("vae.") else k): v for k, v in state.items()}
    return state


def _read_json(path: Path, label: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelLoadError(
            f"Cannot load {label}: the model config {path} is missing or broken ({e}). Reinstall "
            "Sfumato or choose another config folder.",
        ) from e


def _check_loaded(model: torch.nn.Module, component: str, label: str) -> None:
    missing = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if missing:
        raise ModelLoadError(
            f"{label} is missing {len(missing)} weights of its {component} (e.g. {missing[0]}): "
            "the file is incomplete or not a full checkpoint of this architecture. Re-download it.",
            field="model",
        )


def _load_ldm_model(
    cls: Any, convert: Any, state: dict[str, Any], folder: Path, overrides: dict[str, Any]
) -> Any:
    """A diffusers model built from ``folder``'s config, with ``state`` converted by ``convert``.

    Like diffusers' ``from_single_file``, but checks that every weight is there and fits before
    any is assigned, so an incomplete file gets a clear message instead of a meta-tensor error.
    """
    from accelerate import init_empty_weights

    config = dict(cls.load_config(str(folder), local_files_only=True))
    config.update(overrides)
    with init_empty_weights():
        model = cls.from_config(config)
    converted = convert(checkpoint=state, config=config)
    expected = model.state_dict()
    missing = [k for k in expected if k not in converted]
    if missing:
        raise ModelLoadError(
            f"is missing {len(missing)} weights of its {{component}} (e.g. {missing[0]})"
        )
    bad = [k for k in expected if tuple(converted[k].shape) != tuple(expected[k].shape)]
    if bad:
        k = bad[0]
        raise ValueError(
            f"{len(bad)} tensors have the wrong shape, e.g. {k}: {tuple(converted[k].shape)} in "
            f"the file, {tuple(expected[k].shape)} expected"
        )
    model.load_state_dict({k: converted[k] for k in expected}, strict=True, assign=True)
    return model.eval()


def _load_component(
    component: str, label: str, dtype: torch.dtype, fn: Any, *args: Any, **kwargs: Any
) -> Any:
    import torch

    try:
        model = fn(*args, **kwargs)
    except ModelLoadError as e:
        if "{component}" not in e.message:
            raise
        raise ModelLoadError(
            f"{label} " + e.message.format(component=component) + ": the file is incomplete or not "
            "a full checkpoint of this architecture. Re-download it.",
            field="model",
        ) from e
    except (ValueError, KeyError, RuntimeError, IndexError) as e:
        raise ModelLoadError(
            f"{label}: its {component} weights do not fit the expected architecture ({e}). The "
            "file may be damaged or a model type Sfumato does not know.",
            field="model",
        ) from e
    _check_loaded(model, component, label)
    # plain Module.to: diffusers' override warns about fp32-only modules these models do not have
    return torch.nn.Module.to(model, dtype)


def load_single_file(
    path: Path,
    torch_dtype: torch.dtype | None = None,
    prediction_type: str | None = None,
    *,
    config_dir: Path | None = None,
) -> DiffusionPipeline:
    """Load a single-file SD 1.x / 2.x / SDXL ``.safetensors`` checkpoint as a diffusers pipeline.

    Args:
        path: the ``.safetensors`` file.
        torch_dtype: dtype of the returned model weights (None keeps float32).
        prediction_type: ``"epsilon"``, ``"v_prediction"`` (``"v"``) or ``"sample"`` to override
            what the file suggests; None uses the file's hint, else the architecture's default
            (v-prediction for SD 2.x, epsilon otherwise).
        config_dir: a diffusers config folder (``unet/``, ``vae/``, ``text_encoder/``,
            ``scheduler/``, ``tokenizer/``, …) to use instead of ``resources/configs/<arch>``.

    Returns:
        A ``StableDiffusionPipeline`` (sd1, sd2) or ``StableDiffusionXLPipeline`` (sdxl) on the
        CPU, without a safety checker. ``pipe.config`` is untouched; the architecture and the
        prediction type used are in ``pipe.scheduler.config.prediction_type`` and
        :func:`detect_architecture`.

    Raises:
        ModelLoadError: with a message a person can act on.
    """
    path = Path(path)
    info = inspect_checkpoint(path)
    label = path.name
    if info.unsupported:
        raise ModelLoadError(info.unsupported, field="model")
    if not info.has_vae:
        raise ModelLoadError(
            f"{label} has no VAE weights (first_stage_model.*); it is a UNet-only file. Use a full "
            "checkpoint that includes the VAE and text encoder.",
            field="model",
        )
    if not info.has_text_encoder:
        raise ModelLoadError(
            f"{label} has no text-encoder weights; it is a UNet-only file. Use a full checkpoint "
            "that includes the VAE and text encoder.",
            field="model",
        )
    pred = normalize_prediction_type(prediction_type) or info.default_prediction_type()
    arch = info.architecture
    cfg = Path(config_dir) if config_dir is not None else CONFIGS / CONFIG_DIRS[arch]

    import diffusers
    import safetensors
    import safetensors.torch
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
        create_diffusers_clip_model_from_ldm,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    try:
        state = safetensors.torch.load_file(str(path), device="cpu")
    except (safetensors.SafetensorError, OSError, ValueError) as e:
        raise ModelLoadError(
            f"{label} is not a valid safetensors file (truncated or corrupt): re-download it.",
            field="model",
        ) from e
    state = _normalize_keys(state)

    # dtype is applied after the completeness check: casting a half-loaded model fails obscurely
    dtype = torch_dtype or torch.float32
    common = {"config": str(cfg), "local_files_only": True}
    unet_overrides: dict[str, Any] = {}
    if arch == "sd2" and config_dir is None and pred == "epsilon":
        unet_overrides["sample_size"] = 64  # SD 2.x "-base": 512 px
    unet = _load_component(
        "UNet",
        label,
        dtype,
        _load_ldm_model,
        UNet2DConditionModel,
        convert_ldm_unet_checkpoint,
        state,
        cfg / "unet",
        unet_overrides,
    )
    vae = _load_component(
        "VAE",
        label,
        dtype,
        _load_ldm_model,
        AutoencoderKL,
        convert_ldm_vae_checkpoint,
        state,
        cfg / "vae",
        {},
    )
    text_encoder = _load_component(
        "text encoder",
        label,
        dtype,
        create_diffusers_clip_model_from_ldm,
        CLIPTextModel,
        checkpoint=state,
        subfolder="text_encoder",
        **common,
    )

    sched_cfg = _read_json(cfg / "scheduler" / "scheduler_config.json", label)
    sched_cls = getattr(
        diffusers, str(sched_cfg.get("_class_name")), diffusers.EulerDiscreteScheduler
    )
    sched_extra: dict[str, Any] = {"prediction_type": pred}
    if (
        info.zero_terminal_snr
        and "rescale_betas_zero_snr" in inspect.signature(sched_cls).parameters
    ):
        sched_extra["rescale_betas_zero_snr"] = True
    scheduler = sched_cls.from_config(sched_cfg, **sched_extra)

    if arch == "sdxl":
        text_encoder_2 = _load_component(
            "second text encoder",
            label,
            dtype,
            create_diffusers_clip_model_from_ldm,
            CLIPTextModelWithProjection,
            checkpoint=state,
            subfolder="text_encoder_2",
            **common,
        )
        pipe = diffusers.StableDiffusionXLPipeline(
            vae=vae,
            text_encoder=text_encoder,
            text_encoder_2=text_encoder_2,
            tokenizer=clip_tokenizer(cfg / "tokenizer"),
            tokenizer_2=clip_tokenizer(cfg / "tokenizer_2"),
            unet=unet,
            scheduler=scheduler,
            force_zeros_for_empty_prompt=True,
        )
    else:
        pipe = diffusers.StableDiffusionPipeline(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=clip_tokenizer(cfg / "tokenizer"),
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    del state
    return pipe
