"""Measure the embedded model: prompt match, Fréchet distance, ControlNet edge fidelity, grids.

- Prompt match: ``--prompts`` (200) prompts naming a known emoji, with style and background
  drawn at random, seeds from 1,000,000 up (never used in training or tuning); the evaluation
  classifier's top-1 / top-5 against the named emoji.
- Fréchet distance in the classifier's 256-d features: ``--fd-count`` (2,000) generations for
  prompts drawn like the training captions vs as many dataset images; the floor is the same
  distance between two disjoint halves of the dataset.
- ControlNet: for dataset images, canny edges in -> generated image -> canny edges out; the
  edge F1 (1 px tolerance) against the input edges, with and without the ControlNet, same seeds.

    python -m engine.training.evaluate --work /tmp/sfumato-train
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from engine.training.classifier import EmojiClassifier, classify, frechet_distance
from engine.training.dataset import EmojiDataset, caption

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "resources" / "models" / "sfumato-tiny"
CANNY = REPO / "resources" / "models" / "sfumato-tiny-canny"
CLASSIFIER = REPO / "resources" / "eval" / "sfumato-tiny-classifier"


def load_pipeline(path: Path = MODEL):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(path, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def generate(pipe, prompts: list[str], seeds: list[int], steps: int = 25, guidance: float = 5.0,
             batch: int = 50, **kwargs) -> np.ndarray:
    """(N, 64, 64, 3) uint8, one image per prompt, each from its own seeded generator."""
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    out = []
    for i in range(0, len(prompts), batch):
        extra = {k: (v[i:i + batch] if k == "image" else v) for k, v in kwargs.items()}
        res = pipe(
            prompt=prompts[i:i + batch],
            generator=[torch.Generator().manual_seed(s) for s in seeds[i:i + batch]],
            num_inference_steps=steps,
            guidance_scale=guidance,
            height=size,
            width=size,
            output_type="np",
            **extra,
        ).images
        out.append((np.clip(res, 0, 1) * 255).round().astype(np.uint8))
    return np.concatenate(out)


def eval_prompts(data: EmojiDataset, n: int, seed: int) -> tuple[list[str], np.ndarray, list[int]]:
    """``n`` prompts over (emoji, style, background) drawn uniformly; labels and seeds."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(len(data.emoji), size=n)
    styles = rng.integers(len(data.styles), size=n)
    bgs = rng.integers(len(data.backgrounds), size=n)
    prompts = [caption(data.emoji[e].name, data.styles[s], data.backgrounds[b])
               for e, s, b in zip(labels, styles, bgs)]
    return prompts, labels, [seed + i for i in range(n)]


def prompt_match(pipe, clf, data, n=200, steps=25, guidance=5.0, seed=1_000_000):
    prompts, labels, seeds = eval_prompts(data, n, seed)
    images = generate(pipe, prompts, seeds, steps, guidance)
    logits, _ = classify(clf, images)
    top5 = np.argsort(-logits, axis=1)[:, :5]
    return {
        "prompts": n,
        "top1": float((top5[:, 0] == labels).mean()),
        "top5": float((top5 == labels[:, None]).any(1).mean()),
        "steps": steps,
        "guidance_scale": guidance,
        "seeds": f"{seed}..{seed + n - 1}",
    }, images, prompts


def fd_scores(pipe, clf, data, n=2000, steps=25, guidance=5.0, seed=2_000_000):
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(data))
    half = min(n, len(data) // 2)
    _, fa = classify(clf, data.images[perm[:half]])
    _, fb = classify(clf, data.images[perm[half:2 * half]])
    prompts, _, seeds = eval_prompts(data, n, seed)
    t0 = time.time()
    images = generate(pipe, prompts, seeds, steps, guidance)
    gen_s = time.time() - t0
    _, fg = classify(clf, images)
    return {
        "generated": n,
        "reference_images": half,
        "fd_generated_vs_data": frechet_distance(fg, fa),
        "fd_data_vs_data_floor": frechet_distance(fb, fa),
        "steps": steps,
        "guidance_scale": guidance,
        "generation_seconds": gen_s,
    }


def edge_f1(pred: np.ndarray, target: np.ndarray, tol: int = 1) -> float:
    """F1 of two binary edge maps where a pixel within ``tol`` px of an edge counts as a hit."""
    import cv2

    k = np.ones((2 * tol + 1, 2 * tol + 1), np.uint8)
    p, t = pred > 0, target > 0
    if not p.any() or not t.any():
        return 0.0
    precision = (p & (cv2.dilate(t.astype(np.uint8), k) > 0)).sum() / p.sum()
    recall = (t & (cv2.dilate(p.astype(np.uint8), k) > 0)).sum() / t.sum()
    return float(2 * precision * recall / max(precision + recall, 1e-9))


def controlnet_fidelity(pipe, data, n=48, steps=25, guidance=5.0, seed=3_000_000,
                        path: Path = CANNY):
    """Edge F1 of outputs vs the input canny map, with and without the ControlNet.

    The prompt names the same emoji as the edge map, so 'without' is a fair baseline: it knows
    what to draw, not where or how big."""
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    from engine.training.train import canny

    rng = np.random.default_rng(seed)
    idx = rng.choice(len(data), size=n, replace=False)
    edges = canny(data.images[idx])
    prompts = [data.caption(i) for i in idx]
    seeds = [seed + i for i in range(n)]
    cn = StableDiffusionControlNetPipeline(
        **pipe.components, controlnet=ControlNetModel.from_pretrained(path))
    cn.set_progress_bar_config(disable=True)
    with_cn = generate(cn, prompts, seeds, steps, guidance,
                       image=[Image.fromarray(e) for e in edges])
    without = generate(pipe, prompts, seeds, steps, guidance)
    f_with = [edge_f1(canny(with_cn[i:i + 1])[0, ..., 0], edges[i, ..., 0]) for i in range(n)]
    f_without = [edge_f1(canny(without[i:i + 1])[0, ..., 0], edges[i, ..., 0]) for i in range(n)]
    return {
        "images": n,
        "edge_f1_with_controlnet": float(np.mean(f_with)),
        "edge_f1_without_controlnet": float(np.mean(f_without)),
    }, edges, with_cn, without


def grid(images: list[np.ndarray], labels: list[str], cols: int, scale: int = 2) -> Image.Image:
    """Images in a grid, each with its caption underneath (wrapped), scaled up for reading."""
    h, w = images[0].shape[:2]
    tw, th = w * scale, h * scale
    text_h = 48
    rows = -(-len(images) // cols)
    sheet = Image.new("RGB", (cols * (tw + 4) + 4, rows * (th + text_h + 4) + 4), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, (im, label) in enumerate(zip(images, labels)):
        r, c = divmod(k, cols)
        x, y = 4 + c * (tw + 4), 4 + r * (th + text_h + 4)
        sheet.paste(Image.fromarray(im).resize((tw, th), Image.Resampling.NEAREST), (x, y))
        words, lines, line = label.split(), [], ""
        for wd in words:
            if len(line) + len(wd) + 1 > tw // 6:
                lines.append(line)
                line = wd
            else:
                line = (line + " " + wd).strip()
        lines.append(line)
        draw.multiline_text((x, y + th + 1), "\n".join(lines[:4]), fill=(0, 0, 0), spacing=0)
    return sheet


SHOWCASE = ["cat face", "red apple", "rocket", "pizza", "ghost", "sunflower", "taxi", "crown",
            "octopus", "birthday cake", "soccer ball", "fire"]


def sample_grid(pipe, data, steps=25, guidance=5.0, seed=4_000_000) -> Image.Image:
    names = {e.name for e in data.emoji}
    picks = [n for n in SHOWCASE if n in names] or [e.name for e in data.emoji[:12]]
    prompts = []
    for k, name in enumerate(picks):
        for j, style in enumerate(data.styles):
            prompts.append(caption(name, style, data.backgrounds[(k + 3 * j) % len(data.backgrounds)]))
    images = generate(pipe, prompts, [seed + i for i in range(len(prompts))], steps, guidance)
    return grid(list(images), prompts, cols=4 * len(data.styles))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Evaluate the embedded model.")
    p.add_argument("--work", type=Path, default=Path("/tmp/sfumato-train"),
                   help="training folder (for the dataset; metrics.json is written here)")
    p.add_argument("--model", type=Path, default=MODEL)
    p.add_argument("--controlnet", type=Path, default=CANNY)
    p.add_argument("--classifier", type=Path, default=CLASSIFIER)
    p.add_argument("--only", default="grid,match,controlnet,fd")
    p.add_argument("--prompts", type=int, default=200)
    p.add_argument("--fd-count", type=int, default=2000)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--fd-steps", type=int, default=None,
                   help="sampler steps for the Fréchet generations (default: --steps)")
    p.add_argument("--guidance", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--figures", type=Path, default=REPO / "docs" / "images")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = EmojiDataset.load(args.work / "data")
    pipe = load_pipeline(args.model)
    clf, _ = EmojiClassifier.load(args.classifier)
    metrics_path = args.work / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    only = args.only.split(",")
    args.figures.mkdir(parents=True, exist_ok=True)

    def save():
        metrics_path.write_text(json.dumps(metrics, indent=1))
        print(json.dumps(metrics, indent=1), flush=True)

    if "grid" in only:
        sample_grid(pipe, data, args.steps, args.guidance).save(
            args.figures / "sfumato-tiny-samples.png")
    if "match" in only:
        res, images, prompts = prompt_match(pipe, clf, data, args.prompts, args.steps,
                                            args.guidance)
        metrics["prompt_match"] = res
        grid(list(images[:24]), prompts[:24], cols=8).save(
            args.figures / "sfumato-tiny-eval-prompts.png")
        save()
    if "controlnet" in only and args.controlnet.exists():
        res, edges, with_cn, without = controlnet_fidelity(pipe, data, steps=args.steps,
                                                           guidance=args.guidance,
                                                           path=args.controlnet)
        metrics["controlnet"] = res
        k = 8
        ims = list(edges[:k]) + list(with_cn[:k]) + list(without[:k])
        labels = ["edges in"] * k + ["with ControlNet"] * k + ["without"] * k
        grid(ims, labels, cols=k).save(args.figures / "sfumato-tiny-canny.png")
        save()
    if "fd" in only:
        metrics["frechet"] = fd_scores(pipe, clf, data, args.fd_count,
                                       args.fd_steps or args.steps, args.guidance)
        save()


if __name__ == "__main__":
    main()
