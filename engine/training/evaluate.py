"""Measure the embedded model: prompt match, Fréchet distance, ControlNet edge fidelity, grids.

- Prompt match: ``--prompts`` (200) prompts naming a known emoji, with style and background
  drawn at random, seeds from 1,000,000 up (never used in training or tuning); the evaluation
  classifier's top-1 / top-5 against the named emoji.
- Background followed, on the same images: the dominant colour of the image's 3 px border is
  nearest (RGB) to the named background colour, among the ten the model knows.
- Style followed, on the same images: a logistic-regression head on the classifier's features,
  fitted to the dataset's style labels (noto vs twemoji; its held-out accuracy on dataset images
  is reported beside it, the ceiling of the measure), agrees with the named style.
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
from engine.training.dataset import BACKGROUNDS, EmojiDataset, canny, caption

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "resources" / "models" / "sfumato-tiny"
CANNY = REPO / "resources" / "models" / "sfumato-tiny-canny"
CLASSIFIER = REPO / "resources" / "eval" / "sfumato-tiny-classifier"


#: The issue's bar for shipped weights (issue 18, point 3). ``fd_over_floor`` is an upper
#: bound, the others lower bounds; style followed is measured without a bar.
TARGETS = {
    "prompt_match_top1": 0.60,
    "prompt_match_top5": 0.85,
    "background_followed": 0.90,
    "fd_over_floor_max": 3.0,
    "controlnet_edge_f1_gain": 0.20,
}


def load_pipeline(path: Path = MODEL, device: str = "cpu"):
    """The model in float32 (what CPUs run; shipped fp16 weights are upcast) on ``device``."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        path, local_files_only=True, torch_dtype=torch.float32
    ).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def generate(
    pipe,
    prompts: list[str],
    seeds: list[int],
    steps: int = 25,
    guidance: float = 5.0,
    batch: int = 50,
    **kwargs,
) -> np.ndarray:
    """(N, 64, 64, 3) uint8, one image per prompt, each from its own seeded generator."""
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    out = []
    for i in range(0, len(prompts), batch):
        extra = {k: (v[i : i + batch] if k == "image" else v) for k, v in kwargs.items()}
        res = pipe(
            prompt=prompts[i : i + batch],
            generator=[torch.Generator().manual_seed(s) for s in seeds[i : i + batch]],
            num_inference_steps=steps,
            guidance_scale=guidance,
            height=size,
            width=size,
            output_type="np",
            **extra,
        ).images
        out.append((np.clip(res, 0, 1) * 255).round().astype(np.uint8))
    return np.concatenate(out)


def _draw(data: EmojiDataset, n: int, seed: int):
    rng = np.random.default_rng(seed)
    labels = rng.integers(len(data.emoji), size=n)
    styles = rng.integers(len(data.styles), size=n)
    bgs = rng.integers(len(data.backgrounds), size=n)
    prompts = [
        caption(data.emoji[e].name, data.styles[s], data.backgrounds[b])
        for e, s, b in zip(labels, styles, bgs)
    ]
    return prompts, labels, styles, bgs


def eval_prompts(data: EmojiDataset, n: int, seed: int) -> tuple[list[str], np.ndarray, list[int]]:
    """``n`` prompts over (emoji, style, background) drawn uniformly; labels and seeds."""
    prompts, labels, _, _ = _draw(data, n, seed)
    return prompts, labels, [seed + i for i in range(n)]


def border_colour(image: np.ndarray, ring: int = 3) -> np.ndarray:
    """The dominant colour of an (H, W, 3) uint8 image's ``ring``-px border: the most common
    cell of a 8x8x8 RGB grid, averaged over its pixels (so a glyph touching the edge, or
    antialiasing, does not pull it off the background)."""
    px = np.concatenate(
        [
            image[:ring].reshape(-1, 3),
            image[-ring:].reshape(-1, 3),
            image[ring:-ring, :ring].reshape(-1, 3),
            image[ring:-ring, -ring:].reshape(-1, 3),
        ]
    ).astype(np.int32)
    cell = (px[:, 0] >> 5) * 64 + (px[:, 1] >> 5) * 8 + (px[:, 2] >> 5)
    mode = np.bincount(cell).argmax()
    return px[cell == mode].mean(0)


def nearest_background(colour: np.ndarray, names: list[str]) -> str:
    """The named background colour (of ``names``) nearest to ``colour`` in RGB."""
    ref = np.array([BACKGROUNDS[n] for n in names], float)
    return names[int(((ref - colour[None]) ** 2).sum(1).argmin())]


def background_followed(images: np.ndarray, named: list[str], names: list[str]) -> np.ndarray:
    """Per image: whether its border's dominant colour is nearest the named background."""
    return np.array(
        [nearest_background(border_colour(im), names) == want for im, want in zip(images, named)]
    )


class StyleHead:
    """Logistic regression on the evaluation classifier's features that tells the styles
    apart; fitted on dataset images (90 %), its accuracy on the other 10 % reported."""

    def __init__(self, clf, data: EmojiDataset, seed: int = 0, steps: int = 300):
        rng = np.random.default_rng(seed)
        _, feats = classify(clf, data.images)
        y = data.styles_idx.astype(np.int64)
        perm = rng.permutation(len(y))
        n_val = max(1, len(y) // 10)
        val, train = perm[:n_val], perm[n_val:]
        self.mu, self.sd = feats[train].mean(0), feats[train].std(0) + 1e-6
        x = torch.from_numpy((feats - self.mu) / self.sd).float()
        yt = torch.from_numpy(y)
        torch.manual_seed(seed)
        self.head = torch.nn.Linear(x.shape[1], len(data.styles))
        opt = torch.optim.Adam(self.head.parameters(), lr=0.05, weight_decay=1e-4)
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(self.head(x[train]), yt[train])
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.val_accuracy = float((self.predict_features(feats[val]) == y[val]).mean())

    @torch.no_grad()
    def predict_features(self, feats: np.ndarray) -> np.ndarray:
        x = torch.from_numpy((feats - self.mu) / self.sd).float()
        return self.head(x).argmax(1).numpy()


def prompt_measures(
    pipe, clf, data, n=200, steps=25, guidance=5.0, seed=1_000_000, batch: int = 50
):
    """Prompt match, background followed and style followed on the same ``n`` generations."""
    prompts, labels, styles, bgs = _draw(data, n, seed)
    seeds = [seed + i for i in range(n)]
    images = generate(pipe, prompts, seeds, steps, guidance, batch=batch)
    logits, feats = classify(clf, images)
    top5 = np.argsort(-logits, axis=1)[:, :5]
    named_bg = [data.backgrounds[b] for b in bgs]
    bg_ok = background_followed(images, named_bg, list(data.backgrounds))
    common = {
        "prompts": n,
        "steps": steps,
        "guidance_scale": guidance,
        "seeds": f"{seed}..{seed + n - 1}",
    }
    match = {
        **common,
        "top1": float((top5[:, 0] == labels).mean()),
        "top5": float((top5 == labels[:, None]).any(1).mean()),
    }
    background = {
        **common,
        "followed": float(bg_ok.mean()),
        "method": "dominant colour of the 3 px border, nearest named colour (RGB)",
    }
    style: dict = {**common, "styles": list(data.styles)}
    if len(data.styles) > 1:
        head = StyleHead(clf, data)
        style.update(
            {
                "followed": float((head.predict_features(feats) == styles).mean()),
                "head_accuracy_on_data": head.val_accuracy,
                "method": "logistic head on the evaluation classifier's features",
            }
        )
    return match, background, style, images, prompts


def prompt_match(pipe, clf, data, n=200, steps=25, guidance=5.0, seed=1_000_000):
    match, _, _, images, prompts = prompt_measures(pipe, clf, data, n, steps, guidance, seed)
    return match, images, prompts


def fd_scores(pipe, clf, data, n=2000, steps=25, guidance=5.0, seed=2_000_000):
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(data))
    half = min(n, len(data) // 2)
    _, fa = classify(clf, data.images[perm[:half]])
    _, fb = classify(clf, data.images[perm[half : 2 * half]])
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


def controlnet_fidelity(
    pipe, data, n=48, steps=25, guidance=5.0, seed=3_000_000, path: Path = CANNY
):
    """Edge F1 of outputs vs the input canny map, with and without the ControlNet.

    The prompt names the same emoji as the edge map, so 'without' is a fair baseline: it knows
    what to draw, not where or how big."""
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    rng = np.random.default_rng(seed)
    idx = rng.choice(len(data), size=n, replace=False)
    edges = canny(data.images[idx])
    prompts = [data.caption(i) for i in idx]
    seeds = [seed + i for i in range(n)]
    net = ControlNetModel.from_pretrained(path, torch_dtype=torch.float32).to(pipe.device)
    cn = StableDiffusionControlNetPipeline(**pipe.components, controlnet=net)
    cn.set_progress_bar_config(disable=True)
    with_cn = generate(
        cn, prompts, seeds, steps, guidance, image=[Image.fromarray(e) for e in edges]
    )
    without = generate(pipe, prompts, seeds, steps, guidance)
    f_with = [edge_f1(canny(with_cn[i : i + 1])[0, ..., 0], edges[i, ..., 0]) for i in range(n)]
    f_without = [edge_f1(canny(without[i : i + 1])[0, ..., 0], edges[i, ..., 0]) for i in range(n)]
    return (
        {
            "images": n,
            "edge_f1_with_controlnet": float(np.mean(f_with)),
            "edge_f1_without_controlnet": float(np.mean(f_without)),
        },
        edges,
        with_cn,
        without,
    )


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


SHOWCASE = [
    "cat face",
    "red apple",
    "rocket",
    "pizza",
    "ghost",
    "sunflower",
    "taxi",
    "crown",
    "octopus",
    "birthday cake",
    "soccer ball",
    "fire",
]


def sample_grid(
    pipe, data, steps=25, guidance=5.0, seed=4_000_000, subjects: int = 12
) -> Image.Image:
    names = {e.name for e in data.emoji}
    picks = ([n for n in SHOWCASE if n in names] or [e.name for e in data.emoji])[:subjects]
    prompts = []
    for k, name in enumerate(picks):
        for j, style in enumerate(data.styles):
            prompts.append(
                caption(name, style, data.backgrounds[(k + 3 * j) % len(data.backgrounds)])
            )
    images = generate(pipe, prompts, [seed + i for i in range(len(prompts))], steps, guidance)
    return grid(list(images), prompts, cols=4 * len(data.styles))


def judge(metrics: dict) -> dict:
    """Each measure against :data:`TARGETS`: ``{"name": {"value", "target", "passed"}}``; a
    measure not taken is left out."""
    out = {}

    def add(name, value, target, higher_is_better=True):
        ok = value >= target if higher_is_better else value <= target
        out[name] = {"value": value, "target": target, "passed": bool(ok)}

    if "prompt_match" in metrics:
        add("prompt_match_top1", metrics["prompt_match"]["top1"], TARGETS["prompt_match_top1"])
        add("prompt_match_top5", metrics["prompt_match"]["top5"], TARGETS["prompt_match_top5"])
    if "background" in metrics:
        add(
            "background_followed", metrics["background"]["followed"], TARGETS["background_followed"]
        )
    if "frechet" in metrics:
        fd = metrics["frechet"]
        ratio = fd["fd_generated_vs_data"] / max(fd["fd_data_vs_data_floor"], 1e-9)
        add("fd_over_floor", ratio, TARGETS["fd_over_floor_max"], higher_is_better=False)
    if "controlnet" in metrics:
        cn = metrics["controlnet"]
        add(
            "controlnet_edge_f1_gain",
            cn["edge_f1_with_controlnet"] - cn["edge_f1_without_controlnet"],
            TARGETS["controlnet_edge_f1_gain"],
        )
    return out


def _finish(metrics: dict) -> dict:
    metrics["targets"] = judge(metrics)
    metrics["passed"] = all(t["passed"] for t in metrics["targets"].values())
    return metrics


def evaluate_all(
    data: EmojiDataset,
    model: Path,
    controlnet: Path,
    classifier: Path,
    device: str = "cpu",
    prompts: int = 200,
    fd_count: int = 2000,
    controlnet_images: int = 48,
    steps: int = 25,
    guidance: float = 5.0,
    batch: int = 50,
    figures: Path | None = None,
    grid_subjects: int = 12,
) -> dict:
    """Every measure of this module on one model folder; the metrics.json dict, judged."""
    t0 = time.time()
    pipe = load_pipeline(model, device)
    clf, _ = EmojiClassifier.load(classifier)
    metrics: dict = {"device": device}
    match, background, style, images, names = prompt_measures(
        pipe, clf, data, prompts, steps, guidance, batch=batch
    )
    metrics.update(prompt_match=match, background=background, style=style)
    if controlnet.exists():
        res, edges, with_cn, without = controlnet_fidelity(
            pipe,
            data,
            n=min(controlnet_images, len(data)),
            steps=steps,
            guidance=guidance,
            path=controlnet,
        )
        metrics["controlnet"] = res
    metrics["frechet"] = fd_scores(pipe, clf, data, fd_count, steps, guidance)
    if figures is not None:
        figures.mkdir(parents=True, exist_ok=True)
        sample_grid(pipe, data, steps, guidance, subjects=grid_subjects).save(
            figures / "sfumato-tiny-samples.png"
        )
        k = min(24, len(images))
        grid(list(images[:k]), names[:k], cols=8).save(figures / "sfumato-tiny-eval-prompts.png")
        if controlnet.exists():
            k = min(8, len(edges))
            ims = list(edges[:k]) + list(with_cn[:k]) + list(without[:k])
            labels = ["edges in"] * k + ["with ControlNet"] * k + ["without"] * k
            grid(ims, labels, cols=k).save(figures / "sfumato-tiny-canny.png")
    metrics["evaluation_seconds"] = round(time.time() - t0, 1)
    return _finish(metrics)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Evaluate the embedded model.")
    p.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/sfumato-train"),
        help="training folder (for the dataset; metrics.json is written here)",
    )
    p.add_argument("--model", type=Path, default=MODEL)
    p.add_argument("--controlnet", type=Path, default=CANNY)
    p.add_argument("--classifier", type=Path, default=CLASSIFIER)
    p.add_argument(
        "--only",
        default="grid,match,controlnet,fd",
        help="'match' also measures background and style followed",
    )
    p.add_argument("--prompts", type=int, default=200)
    p.add_argument("--fd-count", type=int, default=2000)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument(
        "--fd-steps",
        type=int,
        default=None,
        help="sampler steps for the Fréchet generations (default: --steps)",
    )
    p.add_argument("--guidance", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--figures", type=Path, default=REPO / "docs" / "images")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = EmojiDataset.load(args.work / "data")
    pipe = load_pipeline(args.model, args.device)
    clf, _ = EmojiClassifier.load(args.classifier)
    metrics_path = args.work / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    only = args.only.split(",")
    args.figures.mkdir(parents=True, exist_ok=True)

    def save():
        metrics_path.write_text(json.dumps(_finish(metrics), indent=1))
        print(json.dumps(metrics, indent=1), flush=True)

    if "grid" in only:
        sample_grid(pipe, data, args.steps, args.guidance).save(
            args.figures / "sfumato-tiny-samples.png"
        )
    if "match" in only:
        match, background, style, images, prompts = prompt_measures(
            pipe, clf, data, args.prompts, args.steps, args.guidance
        )
        metrics.update(prompt_match=match, background=background, style=style)
        grid(list(images[:24]), prompts[:24], cols=8).save(
            args.figures / "sfumato-tiny-eval-prompts.png"
        )
        save()
    if "controlnet" in only and args.controlnet.exists():
        res, edges, with_cn, without = controlnet_fidelity(
            pipe, data, steps=args.steps, guidance=args.guidance, path=args.controlnet
        )
        metrics["controlnet"] = res
        k = 8
        ims = list(edges[:k]) + list(with_cn[:k]) + list(without[:k])
        labels = ["edges in"] * k + ["with ControlNet"] * k + ["without"] * k
        grid(ims, labels, cols=k).save(args.figures / "sfumato-tiny-canny.png")
        save()
    if "fd" in only:
        metrics["frechet"] = fd_scores(
            pipe, clf, data, args.fd_count, args.fd_steps or args.steps, args.guidance
        )
        save()


if __name__ == "__main__":
    main()
