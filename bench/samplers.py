"""Quality versus steps: Fréchet distance per sampler, step count and calibration.

For each sampler in ``--samplers`` (``Analytic-DDPM@optimal``: on Analytic-DPM's optimal
trajectory) × ``--steps`` × {plain, calibrated}: ``--count`` images of the
model (prompts drawn from the fit set's captions, fixed seeds, CFG ``--cfg``), their features from
the embedded model's evaluation classifier (``resources/eval/sfumato-tiny-classifier``), and the
Fréchet distance to the reference images' features (the fit set, or ``--reference`` images).
The floor is the distance between two halves of the reference set (FD is biased upwards for
small sets, so compare rows with each other and with the floor, not with published FIDs).

Everything runs through the engine's own code (sampler setup, fit jobs, calibration), in
process, so the numbers are what the app gets. Analytic-DPM's Γ_t and the calibration means are
fitted first on the fit set (``--fit-count`` images) and cached under ``--fits``.

    python bench/samplers.py                                  # the embedded model, full size
    python bench/samplers.py --count 200 --steps 10,25        # reduced
    python bench/samplers.py --model PATH --fit-folder IMAGES --reference IMAGES  # other models

Writes JSON (``--out``) and prints a Markdown table for docs/samplers.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_SAMPLERS = ["DDPM", "DDIM", "Analytic-DDPM", "Analytic-DDIM", "DPM++ 2M", "UniPC"]


class BenchContext:
    """The JobContext surface the fit runners use, printing progress."""

    def __init__(self, loaded, job, output_dir: Path) -> None:
        self.loaded, self.job, self.output_dir = loaded, job, output_dir
        self._last = 0.0

    def load_model(self, _model):
        return self.loaded

    def check_cancel(self) -> None:
        pass

    def begin(self, total, done=0, stage="sampling"):
        self.job.total, self.job.step, self.stage = total, done, stage

    def progress(self, step, stage="sampling"):
        self.job.step = step
        if time.monotonic() - self._last > 10:
            self._last = time.monotonic()
            print(f"  {stage}: {step}/{self.job.total}", file=sys.stderr, flush=True)
        return False

    def preview(self, *args):
        pass

    def add_result(self, image):
        self.job.results.append(image)


def load_images(folder: Path, limit: int):
    import numpy as np
    from PIL import Image

    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg"))
    return np.stack(
        [np.asarray(Image.open(f).convert("RGB").resize((64, 64))) for f in files[:limit]]
    )


def fit(
    kind: str,
    loaded,
    fits,
    data: dict,
    steps: list[int],
    calibration_timesteps: int = 100,
    **analytic,
):
    from engine.fit_jobs import run_analytic_fit, run_calibration_fit
    from engine.protocol import AnalyticFitJob, CalibrationFitJob, Job, JobState, utcnow

    if kind == "analytic":
        spec = AnalyticFitJob(params={"steps": steps, "data": data, **analytic})
        run = run_analytic_fit
    else:
        spec = CalibrationFitJob(params={"data": data, "timesteps": calibration_timesteps})
        run = run_calibration_fit
    job = Job(
        id=f"bench-{kind}", kind=spec.kind, state=JobState.running, spec=spec, created_at=utcnow()
    )
    t0 = time.monotonic()
    run(job, BenchContext(loaded, job, Path("/tmp")), fits=fits)
    print(f"{kind} fit: {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return job.fit


def generate(
    loaded, fits, sampler: str, steps: int, calibrated: bool, prompts, seeds, cfg: float, batch: int
):
    """``sampler`` may carry a timestep spacing: ``Analytic-DDPM@optimal``."""
    import numpy as np
    import torch

    from engine.protocol import GenerateParams
    from engine.sampling import prepare

    pipe = loaded.pipe
    size = int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)
    name, _, spacing = sampler.partition("@")
    p = GenerateParams(
        sampler=name,
        steps=steps,
        calibrated=calibrated,
        cfg_scale=cfg,
        width=size,
        height=size,
        timestep_spacing=spacing or None,
    )
    setup = prepare(loaded, p, fits)
    pipe.scheduler = setup.scheduler
    out = []
    with torch.no_grad(), setup.context(pipe, cfg):
        for i in range(0, len(prompts), batch):
            res = pipe(
                prompt=prompts[i : i + batch],
                width=size,
                height=size,
                num_inference_steps=steps,
                guidance_scale=cfg,
                output_type="np",
                generator=[torch.Generator().manual_seed(s) for s in seeds[i : i + batch]],
                **setup.call_kwargs,
            ).images
            out.append((np.clip(res, 0, 1) * 255).round().astype(np.uint8))
    return np.concatenate(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(REPO / "resources/models/sfumato-tiny"))
    ap.add_argument("--classifier", default=str(REPO / "resources/eval/sfumato-tiny-classifier"))
    ap.add_argument("--fitset", default=None, help="Default: resources/fitsets/<model name>")
    ap.add_argument("--fit-folder", default=None, help="Fit on a folder of images instead")
    ap.add_argument(
        "--reference", default=None, help="Folder of reference images (default: fit set)"
    )
    ap.add_argument("--samplers", default=",".join(DEFAULT_SAMPLERS))
    ap.add_argument("--steps", default="10,25,50,100")
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--fit-count", type=int, default=320)
    ap.add_argument("--cfg", type=float, default=5.0)
    ap.add_argument("--calibration-timesteps", type=int, default=100)
    ap.add_argument(
        "--fit-cfg",
        type=float,
        default=1.0,
        help="Fit Γ on the guided ε̂ at this scale (1: the conditional, default)",
    )
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-calibration", action="store_true", help="Skip the calibrated rows")
    ap.add_argument("--fits", default="/tmp/sfumato-bench-fits")
    ap.add_argument("--out", default="/tmp/sfumato-bench-samplers.json")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="Keep the rows already in --out and the fits already in --fits",
    )
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from engine.fits import FitStore
    from engine.models.loader import ModelManager
    from engine.models.registry import describe
    from engine.training.classifier import EmojiClassifier, classify, frechet_distance

    model_path = Path(args.model)
    if not (model_path / "model_index.json").is_file():
        sys.exit(
            f"No model at {model_path}: the embedded model has not landed yet, or pass --model"
        )
    info = describe(model_path, embedded=True)
    loaded = ModelManager("cpu").load(info)
    fits = FitStore(Path(args.fits))
    clf, _ = EmojiClassifier.load(Path(args.classifier))

    if args.fit_folder:
        data = {"source": "folder", "folder": args.fit_folder, "count": args.fit_count}
        captions = [f.read_text().strip() for f in sorted(Path(args.fit_folder).glob("*.txt"))]
        captions = captions or [""]
    else:
        from engine.training.dataset import load_fit_set

        fitset = Path(args.fitset or REPO / "resources/fitsets" / info.id)
        ref_images, items = load_fit_set(fitset)
        captions = [it["caption"] for it in items]
        data = {"source": "fitset", "count": args.fit_count}
    if args.reference:
        ref_images = load_images(Path(args.reference), 10_000)
    elif args.fit_folder:
        ref_images = load_images(Path(args.fit_folder), 10_000)
    _, ref = classify(clf, ref_images)
    half = len(ref) // 2
    floor = frechet_distance(ref[:half], ref[half : 2 * half])

    steps = [int(s) for s in args.steps.split(",")]
    samplers = args.samplers.split(",")
    model_hash = fits.model_hash(info)
    covered = {
        n
        for f in fits.list(model_hash, "analytic")
        for n in f.steps
        if f.timestep_spacing != "optimal"
    }
    if any(s.startswith("Analytic") and "@" not in s for s in samplers) and not (
        args.resume and set(steps) <= covered
    ):
        fit("analytic", loaded, fits, data, steps, cfg_scale=args.fit_cfg)
    optimal = {
        n
        for f in fits.list(model_hash, "analytic")
        for n in f.steps
        if f.timestep_spacing == "optimal"
    }
    if any(s.endswith("@optimal") for s in samplers) and not (
        args.resume and set(steps) <= optimal
    ):
        fit(
            "analytic",
            loaded,
            fits,
            data,
            steps,
            timestep_spacing="optimal",
            cfg_scale=args.fit_cfg,
        )
    calibrations = [False] if args.no_calibration else [False, True]
    if True in calibrations and not (args.resume and fits.list(model_hash, "calibration")):
        fit("calibration", loaded, fits, data, steps, args.calibration_timesteps)
    done = []
    if args.resume and Path(args.out).is_file():  # rows an interrupted run already measured
        done = json.loads(Path(args.out).read_text())["rows"]
    measured = {(r["sampler"], r["calibrated"], r["steps"]) for r in done}

    rng = np.random.default_rng(2_000_000)
    prompts = [captions[i] for i in rng.integers(len(captions), size=args.count)]
    seeds = [2_000_000 + i for i in range(args.count)]
    rows = list(done)
    for sampler in samplers:
        for calibrated in calibrations:
            for n in steps:
                if (sampler, calibrated, n) in measured:
                    continue
                t0 = time.monotonic()
                images = generate(
                    loaded, fits, sampler, n, calibrated, prompts, seeds, args.cfg, args.batch
                )
                seconds = time.monotonic() - t0
                _, feats = classify(clf, images)
                fd = frechet_distance(feats, ref)
                rows.append(
                    {
                        "sampler": sampler,
                        "calibrated": calibrated,
                        "steps": n,
                        "fd": fd,
                        "seconds_per_image": seconds / args.count,
                    }
                )
                print(
                    f"{sampler:14s} cal={calibrated!s:5s} steps={n:4d} FD={fd:8.2f} "
                    f"{seconds / args.count:.3f} s/img",
                    file=sys.stderr,
                    flush=True,
                )
                result = {
                    "model": str(model_path),
                    "count": args.count,
                    "reference_images": len(ref),
                    "fd_floor": floor,
                    "cfg": args.cfg,
                    "rows": rows,
                    "threads": torch.get_num_threads(),
                    "torch": torch.__version__,
                }
                Path(args.out).write_text(json.dumps(result, indent=1))  # after every row
    print(markdown(result))


def markdown(result: dict) -> str:
    steps = sorted({r["steps"] for r in result["rows"]})
    lines = [
        f"| sampler | calibrated | {' | '.join(f'{n} steps' for n in steps)} |",
        "|---|---|" + "---|" * len(steps),
    ]
    keys = []
    for r in result["rows"]:
        if (r["sampler"], r["calibrated"]) not in keys:
            keys.append((r["sampler"], r["calibrated"]))
    for sampler, cal in keys:
        cells = {
            r["steps"]: r["fd"]
            for r in result["rows"]
            if r["sampler"] == sampler and r["calibrated"] == cal
        }
        lines.append(
            f"| {sampler} | {'yes' if cal else 'no'} | "
            + " | ".join(f"{cells[n]:.2f}" if n in cells else "–" for n in steps)
            + " |"
        )
    lines.append(
        f"\nFD floor (two halves of the {result['reference_images']} reference images): "
        f"{result['fd_floor']:.2f}; {result['count']} images per cell, CFG {result['cfg']}."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
