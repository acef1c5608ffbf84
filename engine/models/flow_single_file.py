"""Load single-file SD3/SD3.5 and Flux.1 checkpoints offline, with their separate parts.

:func:`engine.models.flow_checkpoint.plan` says where each part comes from; this module reads
the tensors and builds a ``StableDiffusion3Pipeline`` or ``FluxPipeline``:

- the transformer and the VAE through diffusers' ``from_single_file`` with a *local* ``config=``
  folder (``resources/configs/sd3|flux`` or the checkpoint's ``<stem>.config/``), so nothing is
  fetched; SD3's key conversion is diffusers' own, Flux's is engine/models/flow_keys.py (diffusers'
  fixes Flux.1's width);
- the text encoders (CLIP-L, CLIP-G, T5) from the checkpoint's ``text_encoders.*`` tensors or
  from separate files in transformers' key layout, built from the config folder's configs;
- tokenizers: CLIP from ``resources/configs/clip_bpe`` (or the config folder's own), T5 from the
  ``t5_tokenizer.json`` the plan found and checked.

fp8 (``float8_e4m3fn``/``e5m2``) tensors are upcast to the compute dtype as they are loaded: the
weights take the compute dtype's memory, the file stays small on disk. Every failure is a
:class:`ModelLoadError` naming the file and what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ModelLoadError
from engine.models.flow_checkpoint import IN_FILE_TEXT, IN_FILE_VAE, FlowPlan, plan
from engine.models.single_file import clip_tokenizer

if TYPE_CHECKING:
    import torch
    from diffusers import DiffusionPipeline


def _read(path: Path) -> dict[str, Any]:
    import safetensors
    import safetensors.torch

    try:
        return safetensors.torch.load_file(str(path), device="cpu")
    except (safetensors.SafetensorError, OSError, ValueError) as e:
        raise ModelLoadError(
            f"{path.name} is not a valid safetensors file (truncated or corrupt): re-download it.",
            field="model",
        ) from e


def _check_loaded(model: Any, component: str, source: str) -> None:
    missing = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if missing:
        raise ModelLoadError(
            f"{source} is missing {len(missing)} weights of its {component} (e.g. {missing[0]}): "
            "the file is incomplete or another model's. Re-download it.",
            field="model",
        )


def _wrap(component: str, source: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(...)`` with any error turned into a message that names the file and the part."""
    try:
        model = fn(*args, **kwargs)
    except ModelLoadError:
        raise
    except (ValueError, KeyError, RuntimeError, IndexError, TypeError, OSError) as e:
        raise ModelLoadError(
            f"{source}: its {component} weights do not fit the expected architecture "
            f"({type(e).__name__}: {e}). The file may be damaged or another model's.",
            field="model",
        ) from e
    _check_loaded(model, component, source)
    return model


def _cast(model: Any, dtype: torch.dtype) -> Any:
    """Every floating tensor (fp8 ones too) to ``dtype``: plain ``Module.to``, as diffusers' own
    warns about fp32-only modules these models do not have."""
    import torch

    return torch.nn.Module.to(model, dtype)


def _transformer(p: FlowPlan, state: dict[str, Any], dtype: torch.dtype) -> Any:
    from diffusers import FluxTransformer2DModel, SD3Transformer2DModel

    cfg = {
        "config": str(p.config_dir),
        "subfolder": p.transformer_subfolder,
        "local_files_only": True,
    }
    if p.architecture == "sd3":
        # diffusers' converter pops what it converts: give it its own dict
        return _cast(SD3Transformer2DModel.from_single_file(dict(state), **cfg), dtype)
    from engine.models.flow_keys import flux_to_diffusers

    config = FluxTransformer2DModel.load_config(
        str(p.config_dir), subfolder=p.transformer_subfolder, local_files_only=True
    )
    return _cast(
        FluxTransformer2DModel.from_single_file(flux_to_diffusers(state, config), **cfg), dtype
    )


def _vae(p: FlowPlan, state: dict[str, Any], dtype: torch.dtype) -> Any:
    from diffusers import AutoencoderKL

    if not any(k.startswith(IN_FILE_VAE) for k in state):  # ae.safetensors: bare original keys
        state = {"first_stage_model." + k: v for k, v in state.items()}
    return _cast(
        AutoencoderKL.from_single_file(
            state, config=str(p.config_dir), subfolder="vae", local_files_only=True
        ),
        dtype,
    )


def _text_encoder(
    cls: Any, folder: Path, state: dict[str, Any], prefix: str, dtype: torch.dtype
) -> Any:
    """A transformers text encoder from ``folder``'s config with the tensors under ``prefix``
    (``""`` for a separate file), in ``dtype``."""
    import torch
    from accelerate import init_empty_weights

    config = cls.config_class.from_pretrained(str(folder), local_files_only=True)
    with init_empty_weights():
        model = cls(config)
    expected = model.state_dict()
    wrapped = any(k.startswith("text_model.") for k in expected)
    weights: dict[str, Any] = {}
    for key, value in state.items():
        if not key.startswith(prefix) or key.endswith("position_ids"):
            continue
        key = key[len(prefix) :]
        if not wrapped:  # transformers >= 5.6 flattened CLIPTextModel
            key = key.removeprefix("text_model.")
        elif not key.startswith(("text_model.", "text_projection.")) and key.startswith(
            ("embeddings.", "encoder.", "final_layer_norm.")
        ):
            key = "text_model." + key
        if key in expected:
            weights[key] = value.to(dtype) if value.is_floating_point() else value
    if "text_projection.weight" in expected and "text_projection.weight" not in weights:
        # SD3's CLIP-L in Stability's files has none: the pooled output is used as it is
        weights["text_projection.weight"] = torch.eye(
            expected["text_projection.weight"].shape[0], dtype=dtype
        )
    if (
        "shared.weight" in expected
        and "shared.weight" not in weights
        and "encoder.embed_tokens.weight" in weights
    ):
        weights["shared.weight"] = weights["encoder.embed_tokens.weight"]
    for key, value in expected.items():  # T5's embedding appears once, tied to encoder.embed_tokens
        if (
            key not in weights
            and key == "encoder.embed_tokens.weight"
            and "shared.weight" in weights
        ):
            weights[key] = weights["shared.weight"]
    bad = [k for k, v in weights.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if bad:
        k = bad[0]
        raise ValueError(f"{k} is {tuple(weights[k].shape)}, {tuple(expected[k].shape)} expected")
    model.load_state_dict(weights, strict=False, assign=True)
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    return torch.nn.Module.to(model, dtype).eval()


def _t5_tokenizer(path: str, max_length: int):
    from tokenizers import Tokenizer
    from transformers import T5TokenizerFast

    return T5TokenizerFast(
        tokenizer_object=Tokenizer.from_file(path),
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_ids=0,
        model_max_length=max_length,
    )


def load_flow_single_file(path: Path, torch_dtype: torch.dtype | None = None) -> DiffusionPipeline:
    """A ``StableDiffusion3Pipeline`` or ``FluxPipeline`` (on the CPU) for the single file
    ``path`` and the parts beside it (see :func:`engine.models.flow_checkpoint.plan`).

    Raises:
        ModelLoadError: what is missing or broken, and what to do about it.
    """
    import diffusers
    import torch
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, T5EncoderModel

    path = Path(path)
    p = plan(path)
    if p.problem:
        raise ModelLoadError(p.problem, field="model")
    assert p.config_dir is not None
    dtype = torch_dtype or torch.float32
    cfg = p.config_dir
    state = _read(path)
    files: dict[str, dict[str, Any]] = {}

    def tensors(role: str) -> tuple[dict[str, Any], str, str]:
        """(tensors, key prefix, the file's name for messages) of a part."""
        source = p.parts.get(role, "")
        if source == "file":
            return state, IN_FILE_TEXT.get(role, ""), path.name
        if source not in files:
            files[source] = _read(Path(source))
        return files[source], "", Path(source).name

    transformer = _wrap("transformer", path.name, _transformer, p, state, dtype)
    vae_state, _prefix, vae_name = tensors("vae")
    vae = _wrap("VAE", vae_name, _vae, p, vae_state, dtype)
    clip_cls = CLIPTextModelWithProjection if p.architecture == "sd3" else CLIPTextModel
    sd, prefix, name = tensors("clip_l")
    clip_l = _wrap(
        "CLIP-L text encoder",
        name,
        _text_encoder,
        clip_cls,
        cfg / "text_encoder",
        sd,
        prefix,
        dtype,
    )
    t5 = t5_tok = None
    t5_folder = cfg / ("text_encoder_3" if p.architecture == "sd3" else "text_encoder_2")
    if p.uses_t5:
        sd, prefix, name = tensors("t5")
        t5 = _wrap(
            "T5 text encoder", name, _text_encoder, T5EncoderModel, t5_folder, sd, prefix, dtype
        )
        t5_tok = _t5_tokenizer(p.t5_tokenizer, 512)
    scheduler_cls = diffusers.FlowMatchEulerDiscreteScheduler
    scheduler = scheduler_cls.from_pretrained(
        str(cfg), subfolder=p.scheduler_subfolder, local_files_only=True
    )
    clip_g = None
    if p.architecture == "sd3":
        sd, prefix, name = tensors("clip_g")
        clip_g = _wrap(
            "CLIP-G text encoder",
            name,
            _text_encoder,
            CLIPTextModelWithProjection,
            cfg / "text_encoder_2",
            sd,
            prefix,
            dtype,
        )
    return assemble_flow_pipeline(
        "sd3" if p.architecture == "sd3" else "flux",
        transformer=transformer,
        scheduler=scheduler,
        vae=vae,
        clip_l=clip_l,
        clip_g=clip_g,
        t5=t5,
        t5_tokenizer=t5_tok,
        tokenizers=cfg,
    )


def assemble_flow_pipeline(
    family: str,
    *,
    transformer: Any,
    scheduler: Any,
    vae: Any,
    clip_l: Any,
    t5: Any,
    t5_tokenizer: Any,
    tokenizers: Path,
    clip_g: Any = None,
) -> DiffusionPipeline:
    """An SD3 (``family`` "sd3", with ``clip_g``) or Flux pipeline from its parts, the CLIP
    tokenizers read from ``tokenizers``/tokenizer[_2]. T5 and its tokenizer may be None (SD3
    runs without them). The one place the pipelines are put together: loading and
    bench/flow_random.py's random models both use it."""
    from diffusers.pipelines.flux.pipeline_flux import FluxPipeline
    from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import (
        StableDiffusion3Pipeline,
    )

    clip_tokens = clip_tokenizer(tokenizers / "tokenizer")
    if family == "sd3":
        return StableDiffusion3Pipeline(
            transformer=transformer,
            scheduler=scheduler,
            vae=vae,
            text_encoder=clip_l,
            tokenizer=clip_tokens,
            text_encoder_2=clip_g,
            tokenizer_2=clip_tokenizer(tokenizers / "tokenizer_2"),
            text_encoder_3=t5,
            tokenizer_3=t5_tokenizer,
        )
    return FluxPipeline(
        transformer=transformer,
        scheduler=scheduler,
        vae=vae,
        text_encoder=clip_l,
        tokenizer=clip_tokens,
        text_encoder_2=t5,
        tokenizer_2=t5_tokenizer,
    )
