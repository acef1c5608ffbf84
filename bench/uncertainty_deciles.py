"""Does BayesDiff's score separate good generations from bad ones on the embedded model?

Generates ``--count`` images with uncertainty on (DDIM, CFG 5, S/k/M at the defaults) for
prompts naming known emoji (the fit set's captions, fixed seeds), through the engine's own job
code in process. Then ranks them by each score — ``latent`` (Σ Var[x₀], BayesDiff's official)
and ``pixel`` (the mean per-pixel variance of the decodes; both come from the same generations)
— and compares the most-uncertain decile with the least-uncertain one: prompt match (top-1 of the evaluation classifier
``resources/eval/sfumato-tiny-classifier`` equals the prompted emoji) and the Fréchet distance
of each decile to the fit set's images in that classifier's features (with deciles of 20
images the FD is dominated by small-sample bias; compare the two deciles with each other).

    python bench/uncertainty_deciles.py --count 200 > docs/uncertainty-deciles.md
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


from bench.samplers import BenchContext  # importable once REPO is on sys.path (above)


class Context(BenchContext):
    """BenchContext plus what a generate job also asks of its context."""

    def free_memory(self) -> None:
        pass

    def add_result(self, image) -> None:
        self.job.results.append(image)


def run(runner, spec, loaded, fits, out: Path):
    from engine.protocol import Job, JobState, utcnow

    job = Job(
        id=uuid.uuid4().hex, kind=spec.kind, state=JobState.running, spec=spec, created_at=utcnow()
    )
    runner(job, Context(loaded, job, out), fits)
    return job


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="/tmp/sfumato-uncertainty-deciles.json")
    args = ap.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    torch.set_num_threads(args.threads)
    from engine.fits import FitStore
    from engine.models.loader import ModelManager
    from engine.models.registry import describe
    from engine.protocol import GenerateJob, GenerateParams, UncertaintyFitJob
    from engine.training.classifier import EmojiClassifier, classify, frechet_distance
    from engine.training.dataset import load_fit_set
    from engine.uncertainty.fit_job import run_uncertainty_fit
    from engine.uncertainty.generate import run_uncertain_generate

    info = describe(REPO / "resources/models/sfumato-tiny", embedded=True)
    loaded = ModelManager("cpu").load(info)
    work = Path(tempfile.mkdtemp(prefix="sfumato-deciles-"))
    fits = FitStore(work / "fits")
    t0 = time.monotonic()
    run(run_uncertainty_fit, UncertaintyFitJob(), loaded, fits, work)
    fit_s = time.monotonic() - t0

    clf, classes = EmojiClassifier.load(REPO / "resources/eval/sfumato-tiny-classifier")
    ref_images, items = load_fit_set(REPO / "resources/fitsets" / info.id)
    _, ref_feats = classify(clf, ref_images)
    captions = [it["caption"] for it in items if it["caption"].split(",")[0] in classes]
    rng = np.random.default_rng(5_000_000)
    prompts = [captions[i] for i in rng.integers(len(captions), size=args.count)]

    rows = []
    t0 = time.monotonic()
    for start in range(0, args.count, args.batch):
        batch = prompts[start : start + args.batch]
        for k, prompt in enumerate(batch):  # one prompt per job: a batch shares its prompt
            params = GenerateParams(
                prompt=prompt,
                seed=5_000_000 + start + k,
                steps=args.steps,
                cfg_scale=5.0,
                sampler="DDIM",
                width=64,
                height=64,
                uncertainty=True,
            )
            job = run(run_uncertain_generate, GenerateJob(params=params), loaded, fits, work)
            image = job.results[0]
            u = image.uncertainty
            rows.append(
                {
                    "prompt": prompt,
                    "latent": u.latent_score,
                    "pixel": u.pixel_score,
                    "path": image.path,
                }
            )
        print(f"  {len(rows)}/{args.count} images", file=sys.stderr, flush=True)
    gen_s = time.monotonic() - t0

    images = np.stack([np.asarray(Image.open(r["path"]).convert("RGB")) for r in rows])
    logits, feats = classify(clf, images)
    for r, lg in zip(rows, logits, strict=True):
        r["match"] = classes[int(lg.argmax())] == r["prompt"].split(",")[0]
    result = {
        "count": len(rows),
        "steps": args.steps,
        "fit_seconds": fit_s,
        "generation_seconds": gen_s,
        "reference_images": len(ref_feats),
        "scores": {},
    }
    a, b = np.array([r["latent"] for r in rows]), np.array([r["pixel"] for r in rows])
    result["rank_correlation"] = float(
        np.corrcoef(a.argsort().argsort(), b.argsort().argsort())[0, 1]
    )
    for kind in ("latent", "pixel"):
        order = np.argsort([r[kind] for r in rows])  # most certain first
        n = max(2, len(rows) // 10)
        deciles = {
            "least uncertain 10 %": order[:n],
            "most uncertain 10 %": order[-n:],
            "all": order,
        }
        groups = result["scores"][kind] = {}
        print(f"\nscore: {kind}\n")
        print("| group | images | mean score | prompt match (top-1) | FD to the fit set |")
        print("|---|---|---|---|---|")
        for name, idx in deciles.items():
            group = {
                "images": len(idx),
                "mean_score": float(np.mean([rows[i][kind] for i in idx])),
                "prompt_match": float(np.mean([rows[i]["match"] for i in idx])),
                "fd": frechet_distance(feats[idx], ref_feats),
            }
            groups[name] = group
            print(
                f"| {name} | {group['images']} | {group['mean_score']:.2e} | "
                f"{group['prompt_match'] * 100:.0f} % | {group['fd']:.1f} |"
            )
    print(f"\nSpearman rank correlation of the two scores: {result['rank_correlation']:.2f}")
    print(
        f"\n{len(rows)} generations (DDIM {args.steps} steps, CFG 5, S=5 k=5 M=8) in "
        f"{gen_s:.0f} s; posterior fit {fit_s:.0f} s; reference {len(ref_feats)} fit-set images."
    )
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
