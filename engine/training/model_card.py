"""Write ``resources/models/sfumato-tiny/README.md`` from what training and evaluation measured.

Reads ``<work>/summary.json`` (train.py), ``<work>/metrics.json`` (evaluate.py) and
``<work>/speed.json`` (bench/tiny_model_speed.py output), so every number in the card comes
from a file a command wrote.

    python -m engine.training.model_card --work /tmp/sfumato-train
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "resources" / "models"


def _mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def _params(folder: Path) -> float:
    from safetensors import safe_open

    n = 0
    for f in folder.rglob("*.safetensors"):
        with safe_open(f, "pt") as st:
            for k in st.keys():  # noqa: SIM118 -- safe_open is not a dict
                n += _prod(st.get_slice(k).get_shape())
    return n / 1e6


def _prod(shape) -> int:
    out = 1
    for s in shape:
        out *= s
    return out


_UNDERTRAINED = [
    "- **Undertrained.** 2,300 UNet steps of batch 32 (~15 epochs) on a shared CPU is far from",
    "  enough: shapes are blobs with roughly the emoji's colours, the background often ignores",
    "  the named colour, and prompt match is well below the 60 % top-1 the project targets. The",
    "  ControlNet (600 steps) changes outputs only a little. These weights exist so that the",
    "  engine and its tests have a real SD-format model now; the `gpu-8min` recipe",
    "  (docs/embedded-model.md, 'Retraining on a GPU') is meant to replace them.",
]


def _dtype(folder: Path) -> str:
    """The stored dtype of the first weight found, e.g. 'float16'."""
    from safetensors import safe_open

    names = {"F16": "float16", "BF16": "bfloat16", "F32": "float32"}
    for f in sorted(folder.rglob("*.safetensors")):
        with safe_open(f, "pt") as st:
            for k in st.keys():  # noqa: SIM118 -- safe_open is not a dict
                return names.get(st.get_slice(k).get_dtype(), "?")
    return "?"


def _minutes(s: float) -> str:
    return f"{s / 60:.1f} min"


def write_card(
    work: Path, model: Path = MODELS / "sfumato-tiny", canny: Path = MODELS / "sfumato-tiny-canny"
) -> Path:
    summary = json.loads((work / "summary.json").read_text())
    metrics = (
        json.loads((work / "metrics.json").read_text()) if (work / "metrics.json").exists() else {}
    )
    speed = json.loads((work / "speed.json").read_text()) if (work / "speed.json").exists() else {}
    s = summary.get("settings", {})
    data = summary.get("data", {})
    stage_s = {
        k: summary[k]["seconds"]
        for k in ("data", "vae", "unet", "unet_resume", "controlnet", "classifier")
        if k in summary
    }
    total_s = sum(stage_s.values())

    for fig in ("sfumato-tiny-samples.png", "sfumato-tiny-canny.png"):
        src = REPO / "docs" / "images" / fig
        if src.exists():
            shutil.copy(src, model / fig.replace("sfumato-tiny-", ""))

    parts = {p: _params(model / p) for p in ("text_encoder", "vae", "unet")}
    pm = metrics.get("prompt_match", {})
    fd = metrics.get("frechet", {})
    cn = metrics.get("controlnet", {})
    lines = [
        "# sfumato-tiny",
        "",
        "Sfumato's embedded default model: a text-to-image diffusion model in the exact diffusers",
        "Stable Diffusion format (`StableDiffusionPipeline`), trained from scratch by",
        "`engine/training/train.py` on emoji rendered from sets installed from package registries.",
        "It draws one emoji, in a named style, on a background of a named colour, at 64x64.",
        "It is a test-and-first-run model, not an art model.",
        "",
        "```python",
        "from diffusers import StableDiffusionPipeline",
        'pipe = StableDiffusionPipeline.from_pretrained("resources/models/sfumato-tiny", local_files_only=True)',
        'pipe("cat face, noto style, on a blue background", height=64, width=64,',
        "     num_inference_steps=25, guidance_scale=5.0).images[0]",
        "```",
        "",
        "The canny ControlNet is the sibling folder `resources/models/sfumato-tiny-canny/`",
        "(`ControlNetModel.from_pretrained`); the evaluation classifier is",
        "`resources/eval/sfumato-tiny-classifier/`; a fit set of captioned training images is",
        "`resources/fitsets/sfumato-tiny/`.",
        "",
        "![samples](samples.png)",
        "",
        "## Prompts",
        "",
        "`<emoji name>[, <style> style][, on a <colour> background]`, e.g. `rocket, twemoji style, on a",
        (
            "black background`. Names are the Unicode CLDR short names of the "
            f"{data.get('emoji', '?')} emoji listed in `engine/training/dataset.py` (`EMOJI`); styles: "
            f"{', '.join(data.get('styles', []))}; colours: white, black, gray, red, orange, yellow, "
            "green, blue, purple, pink. Other words tokenize (byte-level BPE) but mean nothing to it."
        ),
        "",
        "## Architecture",
        "",
        "| part | class | size |",
        "|---|---|---|",
        f"| text encoder | `CLIPTextModel` ({s.get('preset', 'cpu')} preset), tokenizer: CLIP BPE learnt on the captions | {parts['text_encoder']:.2f} M params |",
        f"| VAE | `AutoencoderKL`, 3 blocks, latents 4x16x16 for 64x64 (factor 4) | {parts['vae']:.2f} M params |",
        f"| UNet | `UNet2DConditionModel`, cross-attention at 1/2, 1/4 and middle | {parts['unet']:.2f} M params |",
        f"| ControlNet | `ControlNetModel.from_unet`, canny (OpenCV 80/160) | {_params(canny):.2f} M params |"
        if canny.exists()
        else "",
        "| scheduler | `DPMSolverMultistepScheduler`, SD 1.x betas (scaled_linear 0.00085-0.012), epsilon | |",
        "",
        f"On disk: model {_mb(model):.1f} MB, ControlNet {_mb(canny):.1f} MB (safetensors, {_dtype(model)}; loaded as float32 on CPUs)."
        if canny.exists()
        else "",
        "",
        "## Data",
        "",
        (
            f"{data.get('images', '?')} images = {data.get('emoji', '?')} emoji x "
            f"{len(data.get('styles', []))} styles x 10 background colours x {s.get('variants', 1)} variant(s), "
            f"{s.get('size', 64)}x{s.get('size', 64)}: each glyph scaled to 66-88 % of the image, "
            "shifted up to 6 %, on a flat colour jittered by up to 12/255. Captions "
            "`<name>, <style> style, on a <colour> background`; training also drops the style, the "
            "background or both (so short prompts work) and 10 % of captions entirely (for "
            "classifier-free guidance). Built by `python -m engine.training.dataset`."
        ),
        "",
        "Sources and licences: see [LICENSES.md](LICENSES.md). Noto Color Emoji (Apache-2.0 images,",
        "OFL-1.1 font) and Twemoji (CC-BY-4.0). OpenMoji (CC BY-SA 4.0) is supported by the builder",
        "but not in these weights.",
        "",
        "## Training",
        "",
        (
            f"Device: {summary.get('device_name', '?')}, torch {summary.get('torch', '?')}, seed "
            f"{s.get('seed', 0)}, batch {s.get('batch', '?')}."
        ),
        "",
        "| stage | steps | wall time | result |",
        "|---|---|---|---|",
    ]
    if "vae" in summary:
        v = summary["vae"]
        lines.append(
            f"| VAE (L1 + gradient L1 + KL {s.get('vae_kl')}) | {v['steps']} | "
            f"{_minutes(v['seconds'])} | PSNR {v['psnr_db']:.1f} dB on the data, "
            f"scaling_factor {v['scaling_factor']:.3f} |"
        )
    if "unet" in summary:
        u = summary["unet"]
        lines.append(
            f"| text encoder + UNet (eps, Min-SNR-5, EMA {s.get('ema')}) | {u['steps']} | "
            f"{_minutes(u['seconds'])} | final loss {u['final_loss']:.4f} |"
        )
    if "unet_resume" in summary:
        u = summary["unet_resume"]
        lines.append(
            f"| text encoder + UNet, continued (`--resume`, lr {u.get('lr')}, EMA "
            f"{u.get('ema')}) | {u['steps']} | {_minutes(u['seconds'])} | final loss "
            f"{u['final_loss']:.4f} |"
        )
    if "controlnet" in summary:
        c = summary["controlnet"]
        lines.append(
            f"| ControlNet (UNet frozen, 50 % captions dropped) | {c['steps']} | "
            f"{_minutes(c['seconds'])} | |"
        )
    if "classifier" in summary:
        c = summary["classifier"]
        lines.append(
            f"| evaluation classifier | {c['steps']} | {_minutes(c['seconds'])} | "
            f"held-out top-1 {100 * c['val_top1']:.1f} % |"
        )
    lines += [
        "",
        (
            f"Sum of stage wall times: {_minutes(total_s)}, "
            + (
                f"recipe `{summary['recipe']['name']}` (a time budget per stage, "
                "engine/training/recipes.py). "
                if "recipe" in summary
                else "one thread per process on a 2-core CPU shared with other work (the classifier ran "
                "beside the VAE, the UNet continuation beside the ControlNet). "
            )
            + "Losses, and the JSON this card was written from, are in `training-logs/`. Commands:"
        ),
        "",
        "```",
        *(
            summary.get("commands")
            or (
                [
                    (
                        f"python -m engine.training.train --recipe {s.get('recipe')} --work <work> "
                        "--dataset-archive .train-data/sprites.npz"
                    )
                ]
                if s.get("recipe")
                else None
            )
            or [
                "python -m engine.training.train "
                + " ".join(
                    f"--{k.replace('_', '-')} {v}"
                    for k, v in s.items()
                    if k
                    in (
                        "device",
                        "preset",
                        "threads",
                        "batch",
                        "vae_steps",
                        "unet_steps",
                        "controlnet_steps",
                        "classifier_steps",
                        "seed",
                    )
                )
            ]
        ),
        "```",
        "",
        "## Quality (measured)",
        "",
    ]
    if pm:
        lines += [
            (
                f"- **Prompt match**: {pm['prompts']} prompts naming a known emoji (random style and "
                f"background, seeds {pm['seeds']}), {pm['steps']} steps, CFG {pm['guidance_scale']}: "
                f"top-1 **{100 * pm['top1']:.1f} %**, top-5 **{100 * pm['top5']:.1f} %** (evaluation "
                f"classifier; chance is {100 / max(1, data.get('emoji', 1)):.1f} %)."
            ),
        ]
    if fd:
        lines += [
            (
                f"- **Fréchet distance** in the classifier's 256-d features: {fd['generated']} "
                f"generations ({fd['steps']} DPM-Solver++ steps, CFG {fd['guidance_scale']}) vs "
                f"{fd['reference_images']} dataset images: **{fd['fd_generated_vs_data']:.2f}**; "
                f"floor (two disjoint halves of the dataset): **{fd['fd_data_vs_data_floor']:.2f}**."
            ),
        ]
    if cn:
        lines += [
            (
                f"- **ControlNet**: edge F1 (1 px tolerance) of output canny vs input canny over "
                f"{cn['images']} dataset edge maps: **{cn['edge_f1_with_controlnet']:.3f}** with the "
                f"ControlNet vs {cn['edge_f1_without_controlnet']:.3f} without (same prompt and seed)."
            ),
            "",
            "![canny](canny.png)",
        ]
    if speed:
        lines += [
            "",
            (
                f"- **Speed**: one 64x64 image, {speed['steps']} steps, CFG: "
                f"**{speed['seconds_per_image_median']:.2f} s** median ({speed['threads']} CPU threads, "
                f"{speed['device']}; `python bench/tiny_model_speed.py`)."
            ),
        ]
    lines += [
        "",
        "Commands: `python -m engine.training.evaluate --work <work>` (metrics.json and figures),",
        (
            "`python bench/tiny_model_speed.py` (speed), then this card: "
            "`python -m engine.training.model_card --work <work>`."
        ),
        "",
        "## Limits",
        "",
        "- 64x64 only (the UNet is convolutional, other sizes run but were never trained).",
        "- One emoji per image; no composition, no text, no people (skin tones are not in the set).",
        *(
            _UNDERTRAINED
            if not metrics.get("passed")
            else [
                (
                    "- Measured against the project's targets in `training-logs/metrics.json` "
                    "(`targets`): all met."
                )
            ]
        ),
        "",
    ]
    logs = model / "training-logs"
    logs.mkdir(exist_ok=True)
    for f in ("summary.json", "metrics.json", "speed.json", "log.jsonl", "log-resume.jsonl"):
        # --work may be the training-logs folder itself (after a bundle is unpacked).
        if (work / f).exists() and (work / f).resolve() != (logs / f).resolve():
            shutil.copy(work / f, logs / f)
    out = model / "README.md"
    out.write_text("\n".join(line for line in lines if line is not None) + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/sfumato-train"))
    args = p.parse_args(argv)
    print(write_card(args.work))


if __name__ == "__main__":
    main()
