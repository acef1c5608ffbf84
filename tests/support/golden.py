"""The golden set: the built-in model's outputs from every job runner, recorded once and checked
bit for bit by ``tests/engine/test_golden.py`` (issue 17, "How it is checked").

The set runs in this process, on the CPU, in float32, with the embedded ``sfumato-tiny`` model
and the real runners (``run_generate``, ``run_sampler_grid``, the fit jobs, BayesDiff's
generate and ``run_video_edit``) behind a small job context without a queue. Sizes are tiny
(64×64, 3–6 steps) so the whole set takes under a minute on one core:

- ``generate``: Euler a (batch of two: per-image seeds), DPM++ 2M Karras, DDIM, and Euler with
  A1111's weights, BREAK, prompt editing and Clip skip 2;
- ``grid``: a 2×2 sampler grid's four cells (the assembled sheet is not compared: it prints
  the cells' timings);
- ``fits``: Γ_t of an analytic fit, the calibration means and BayesDiff's posterior variances,
  each fitted on the model's shipped fit set with the smallest counts a fit allows;
- ``analytic``: an Analytic-DDIM image; ``calibrated``: a calibrated DPM++ 2M image;
- ``uncertainty``: a DDIM image with its BayesDiff pixel map, and two variations from step 2;
- ``robustness``: a small prompt-robustness probe's images and MMD²;
- ``video``: a 4-frame LOVECon attribute edit (two windows) of the sample clip, whose frames
  are handed to the runner in memory (no codec between the edit and the comparison);
- ``v-prediction/``: the model read as a v-prediction one (generate, fits, Analytic-DDIM,
  calibration, BayesDiff, video), so every ε/v conversion's v branch is pinned too.

Record (only for an intended change of behaviour, with the reason in the commit message)::

    PYTHONPATH=$PWD python -m tests.support.golden --record

This writes ``tests/golden/``: images and frames as PNG, maps and fit statistics as ``.npy``,
and ``manifest.json`` saying what produced each file and on which torch and CPU capability.
Everything runs with one thread and fixed global seeds, and the global RNG states and thread
count are put back afterwards, so the outputs do not depend on what ran before in the process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"
MANIFEST = "manifest.json"
MODEL = "sfumato-tiny"
PROMPT = "red apple, twemoji style, on a blue background"
NEGATIVE = "black background"
SIZE = 64
#: Steps the Analytic-DDIM image uses: the analytic fit covers exactly this grid.
ANALYTIC_STEPS = 4
#: A fit's smallest data set (FitData.count's lower bound).
FIT_DATA = {"source": "fitset", "count": 8}


@dataclass
class Output:
    """One golden file: ``name`` (its path under the golden folder), the array, and what made
    it (the case and the parameters, for the manifest)."""

    name: str
    array: np.ndarray
    case: str
    params: dict = field(default_factory=dict)


def _png(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """One CPU thread, float32 as torch's default dtype and fixed global seeds for the duration;
    the caller's thread count, default dtype and RNG states (torch, NumPy, random) come back
    afterwards."""
    import torch

    threads, default_dtype = torch.get_num_threads(), torch.get_default_dtype()
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        torch.set_num_threads(1)
        torch.set_default_dtype(torch.float32)
        torch.manual_seed(0)
        np.random.seed(0)
        random.seed(0)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            torch.set_default_dtype(default_dtype)
            np.random.set_state(np_state)
            random.setstate(py_state)


class GoldenRun:
    """The embedded model loaded once (float32, CPU, eager) and a fit store in ``work``; each
    ``case_*`` method runs one job and returns its outputs."""

    def __init__(self, work: Path) -> None:
        from engine.fits import FitStore
        from engine.models.loader import ModelManager
        from engine.models.registry import ModelRegistry

        self.work = work
        #: Folder of the outputs in the golden set ("" for the model as shipped).
        self.prefix = ""
        self.manager = ModelManager("cpu", "fp32")  # no fast path: eager is the reference
        self.loaded = self.manager.load(ModelRegistry([]).get(MODEL))
        self.fits = FitStore(work / "fits")

    def close(self) -> None:
        self.manager.unload()

    def _run(self, spec, runner: Callable, **kwargs):
        from tests.support.job_context import InProcessContext, make_job

        job = make_job(spec, job_id="60d1e560d1e560d1")
        out = self.work / "out" / (self.prefix or "shipped") / spec.kind
        out.mkdir(parents=True, exist_ok=True)
        runner(job, InProcessContext(self.loaded, job, out), **kwargs)
        return job

    # ------------------------------------------------------------------ cases

    def _generate(self, name: str, **params) -> list[Output]:
        from engine.generate import run_generate
        from engine.protocol import GenerateJob

        params = {
            "prompt": PROMPT,
            "negative_prompt": NEGATIVE,
            "seed": 1234,
            "width": SIZE,
            "height": SIZE,
            "cfg_scale": 5.0,
            **params,
        }
        job = self._run(GenerateJob(params=params), run_generate, fits=self.fits)
        images = sorted((r for r in job.results if r.role == "image"), key=lambda r: r.index)
        if not images:
            raise AssertionError(f"generate {name} saved no image")
        name = self.prefix + name
        outputs = [
            Output(f"{name}-{r.index}.png", _png(r.path), "generate", params) for r in images
        ]
        for r in images:
            if r.uncertainty is not None:
                npy = Path(r.path).parent / r.uncertainty.map_name
                outputs.append(
                    Output(
                        f"{name}-{r.index}.uncertainty.npy",
                        np.load(npy),
                        "generate (uncertainty map)",
                        params,
                    )
                )
        return outputs

    def case_generate(self) -> list[Output]:
        return [
            *self._generate("generate/euler-a", sampler="Euler a", steps=5, batch_size=2),
            *self._generate("generate/dpmpp-2m-karras", sampler="DPM++ 2M Karras", steps=4),
            *self._generate("generate/ddim", sampler="DDIM", steps=4, seed=77),
        ]

    def case_prompt_syntax(self) -> list[Output]:
        """A1111's weights, BREAK and prompt editing, and Clip skip 2: the conditioning paths
        (and the per-step embedding swap) of the render loop."""
        return self._generate(
            "generate/prompt-syntax",
            sampler="Euler",
            steps=4,
            seed=21,
            clip_skip=2,
            prompt="(red apple:1.3), [twemoji:noto:0.5] style BREAK on a blue background",
        )

    def case_grid(self) -> list[Output]:
        from engine.protocol import SamplerGridJob
        from engine.sampler_grid import run_sampler_grid

        params = {
            "base": {"prompt": PROMPT, "seed": 42, "width": SIZE, "height": SIZE, "cfg_scale": 4.0},
            "samplers": ["Euler", {"sampler": "DPM++ 2M", "schedule": "karras"}],
            "steps": [3, 5],
        }
        job = self._run(SamplerGridJob(params=params), run_sampler_grid, fits=self.fits)
        cells = [r for r in job.results if r.role == "image" and r.cell is not None]
        if len(cells) != 4:
            raise AssertionError(f"the 2×2 grid saved {len(cells)} cells")
        return [
            Output(
                f"{self.prefix}grid/r{r.cell.row}c{r.cell.col}.png",
                _png(r.path),
                "sampler_grid",
                params | {"cell": [r.cell.sampler, r.cell.steps]},
            )
            for r in cells
        ]

    def case_fits(self) -> list[Output]:
        from engine.fit_jobs import run_analytic_fit, run_calibration_fit
        from engine.protocol import AnalyticFitJob, CalibrationFitJob, UncertaintyFitJob
        from engine.uncertainty.fit_job import run_uncertainty_fit

        outputs = []
        runs = (
            (
                "analytic",
                AnalyticFitJob,
                run_analytic_fit,
                {"steps": [ANALYTIC_STEPS], "data": FIT_DATA, "samples_per_step": 8},
                ("gamma", "data_range"),
            ),
            (
                "calibration",
                CalibrationFitJob,
                run_calibration_fit,
                {"timesteps": 3, "data": FIT_DATA},
                ("mean_cond", "mean_uncond", "spatial_cond"),
            ),
            ("uncertainty", UncertaintyFitJob, run_uncertainty_fit, {"data": FIT_DATA}, None),
        )
        for kind, spec_type, runner, params, keys in runs:
            job = self._run(spec_type(params=params), runner, fits=self.fits)
            if job.fit is None:
                raise AssertionError(f"the {kind} fit saved nothing")
            tensors = self.fits.tensors(job.fit)
            for key in keys or sorted(tensors):
                outputs.append(
                    Output(
                        f"{self.prefix}fits/{kind}-{key}.npy",
                        tensors[key].numpy(),
                        f"{kind}_fit",
                        params,
                    )
                )
        return outputs

    def case_analytic(self) -> list[Output]:
        return self._generate(
            "analytic/analytic-ddim", sampler="Analytic-DDIM", steps=ANALYTIC_STEPS, seed=5
        )

    def case_calibrated(self) -> list[Output]:
        return self._generate(
            "calibrated/dpmpp-2m", sampler="DPM++ 2M", steps=4, seed=6, calibrated=True
        )

    def case_uncertainty(self) -> list[Output]:
        return self._generate(
            "uncertainty/ddim",
            sampler="DDIM",
            steps=4,
            seed=8,
            uncertainty={"samples": 2, "skip": 2, "decodes": 3},
        )

    def case_variations(self) -> list[Output]:
        """BayesDiff variations: one trajectory to step 2, two draws of x_t, then sampling."""
        return self._generate(
            "uncertainty/variations",
            sampler="DDIM",
            steps=4,
            seed=8,
            batch_size=2,
            uncertainty={
                "samples": 2,
                "skip": 2,
                "map": False,
                "variation_step": 2,
                "variation_seed": 9,
            },
        )

    def case_robustness(self) -> list[Output]:
        """A prompt-robustness probe: two words, two images a group, one perturbation; its
        images and the report's MMD² (words, then perturbations)."""
        from engine.protocol import RobustnessJob
        from engine.robustness.job import run_prompt_robustness

        params = {
            "base": {
                "prompt": "red apple",
                "seed": 31,
                "width": SIZE,
                "height": SIZE,
                "steps": 3,
                "cfg_scale": 5.0,
                "sampler": "DDIM",
            },
            "samples": 2,
            "rules": ["typo"],
            "top_k": 1,
            "permutations": 50,
        }
        job = self._run(RobustnessJob(params=params), run_prompt_robustness, fits=self.fits)
        report = job.robustness
        if report is None or not report.done or not report.perturbations:
            raise AssertionError(f"the robustness probe did not finish: {report}")
        images = sorted(job.results, key=lambda r: r.index)
        # MMD² only: a p-value counts permutations, so one rounding step on another CPU can
        # move it by a whole 1/(permutations + 1) and the cross-machine tolerance means nothing
        stats = np.array([x.mmd2 for x in [*report.words, *report.perturbations]], np.float64)
        prompts = [g.prompt for g in report.groups]
        return [
            *(
                Output(
                    f"{self.prefix}robustness/{r.index}.png",
                    _png(r.path),
                    "prompt_robustness",
                    params,
                )
                for r in images
            ),
            Output(
                f"{self.prefix}robustness/report.npy",
                stats,
                "prompt_robustness",
                params | {"groups": prompts},
            ),
        ]

    def case_v_prediction(self) -> list[Output]:
        """The same model read as a v-prediction one (its scheduler config's prediction_type
        changed, with fits of its own): the images are poor, but every ε/v conversion (the
        samplers, the fits, calibration, BayesDiff and the video edit) takes its v branch."""
        from engine.fits import FitStore

        loaded, shipped = self.loaded, self.loaded.base_scheduler_config
        fits = self.fits
        loaded.base_scheduler_config = {**shipped, "prediction_type": "v_prediction"}
        self.prefix, self.fits = "v-prediction/", FitStore(self.work / "fits-v")
        try:
            return [
                *self._generate("generate/ddim", sampler="DDIM", steps=4, seed=77),
                *self._generate("generate/euler-a", sampler="Euler a", steps=4),
                *self.case_fits(),
                *self.case_analytic(),
                *self.case_calibrated(),
                *self.case_uncertainty(),
                *self.case_video(),
            ]
        finally:
            loaded.base_scheduler_config, self.prefix, self.fits = shipped, "", fits

    def case_video(self) -> list[Output]:
        """A 4-frame LOVECon edit through ``run_video_edit``; the decoder and the encoder are
        replaced by in-memory ones for this run only (``engine.video.io``'s functions, which
        the runner imports when it runs)."""
        from engine.protocol import VideoEditJob
        from engine.video import io
        from engine.video.edit_job import run_video_edit
        from engine.video.sample_clip import sample_caption, sample_frames

        frames = sample_frames(4, SIZE, SIZE)
        source = sample_caption()
        params = {
            "source": "golden-clip",
            "source_prompt": source,
            "target_prompt": source.replace("twemoji", "noto"),
            "edit_type": "attribute",
            "steps": 3,
            "window": 2,
            "width": SIZE,
            "height": SIZE,
            "cfg_scale": 5.0,
            "seed": 3,
        }
        written: list[np.ndarray] = []
        calls = {"decode": 0}

        def decode(_path, *_args, **_kwargs):
            calls["decode"] += 1
            return io.Clip(
                frames=frames,
                indices=list(range(len(frames))),
                fps=8.0,
                start_s=0.0,
                end_s=len(frames) / 8,
                probe=SimpleNamespace(has_audio=False),
            )

        def encode_like(out, _path, _clip, _audio):
            written.append(np.asarray(out).copy())
            return []

        uploads = SimpleNamespace(resolve=lambda _source, _field: self.work / "golden-clip.mp4")
        saved = io.decode, io.encode_like
        io.decode, io.encode_like = decode, encode_like
        try:
            self._run(
                VideoEditJob(params=params),
                run_video_edit,
                uploads=uploads,
                cache_dir=self.work / "cache",
            )
        finally:
            io.decode, io.encode_like = saved
        if calls["decode"] != 1 or len(written) != 1:
            raise AssertionError(
                "run_video_edit no longer reads its clip with "
                "engine.video.io.decode and writes it with encode_like when it "
                "runs: update tests/support/golden.py's case_video to hand it "
                "the frames in memory again"
            )
        edited = written[0]
        if edited.shape != frames.shape:
            raise AssertionError(f"the edit has shape {edited.shape}, not {frames.shape}")
        return [
            Output(f"{self.prefix}video/frame-{i}.png", edited[i], "video_edit (lovecon)", params)
            for i in range(len(edited))
        ]


CASES = (
    "generate",
    "prompt_syntax",
    "grid",
    "fits",
    "analytic",
    "calibrated",
    "uncertainty",
    "variations",
    "robustness",
    "video",
    "v_prediction",
)


def produce(work: Path | None = None) -> list[Output]:
    """Every golden output, freshly rendered (in this order: the fits feed the later cases)."""
    with contextlib.ExitStack() as stack:
        if work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="golden-")))
        stack.enter_context(deterministic())
        run = GoldenRun(work)
        stack.callback(run.close)
        outputs = []
        for case in CASES:
            outputs += getattr(run, f"case_{case}")()
        return outputs


def environment() -> dict:
    """What float rounding depends on: the torch build and the CPU kernels it picks."""
    import torch

    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def save(outputs: list[Output], folder: Path = GOLDEN_DIR) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.rglob("*"):
        if old.is_file() and old.suffix in (".png", ".npy"):
            old.unlink()
    files = {}
    for o in outputs:
        path = folder / o.name
        path.parent.mkdir(parents=True, exist_ok=True)
        if o.name.endswith(".png"):
            Image.fromarray(o.array).save(path)
        else:
            np.save(path, o.array)
        files[o.name] = {
            "case": o.case,
            "params": o.params,
            "shape": list(o.array.shape),
            "dtype": str(o.array.dtype),
        }
    manifest = {
        "model": MODEL,
        "device": "cpu",
        "dtype": "float32",
        "threads": 1,
        **environment(),
        "files": files,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")


def load(name: str, folder: Path = GOLDEN_DIR) -> np.ndarray:
    path = folder / name
    return _png(path) if name.endswith(".png") else np.load(path)


def manifest(folder: Path = GOLDEN_DIR) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--record", action="store_true", help=f"render the set and write it to {GOLDEN_DIR}"
    )
    a = ap.parse_args(argv)
    if not a.record:
        ap.print_help()
        return 2
    t0 = time.perf_counter()
    outputs = produce()
    save(outputs)
    size = sum(f.stat().st_size for f in GOLDEN_DIR.rglob("*") if f.is_file())
    print(
        f"recorded {len(outputs)} outputs in {time.perf_counter() - t0:.1f} s to {GOLDEN_DIR} "
        f"({size / 1024:.0f} KiB; {environment()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
