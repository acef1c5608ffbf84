"""Every GPU check and GPU figure of issue 15 in one command, from a bare GPU machine to a table.

    python bench/gpu_suite.py                 # on a CUDA machine: ≤ 9 minutes on one H100
    python bench/gpu_suite.py --dry-run       # every stage on the CPU at toy sizes (< 5 min)

Each stage runs in its own subprocess with its own time budget (``STAGES``); the whole run has a
deadline (``--budget``, 540 s). A stage that overruns is killed and reported as cut, with what it
had measured by then (each stage rewrites its partial JSON after every figure), and the next
stage starts: a slow stage never eats the rest.

Writes ``docs/gpu/results.json`` (keys: device, date, torch, diffusers, tests, sd15, sdxl,
warmup, uncertainty, video, plus ``stages``: seconds and status of each) and the table
``docs/gpu/README.md``. ``--dry-run`` writes under ``--out-dir`` (a temporary folder unless
given) so toy numbers never overwrite real ones.

Stages (docs/gpu/README.md says what each measures):

- tests: ``pytest -m gpu`` (tests/gpu: every engine path on CUDA in fp16; SD 1.5-architecture
  generate / uncertainty / 16-frame LOVECon at 512²);
- sd15: SD 1.5 architecture with random weights (resources/configs/sd15), 512², 25 steps
  DPM++ 2M, CFG 7.5: plain diffusers (fp16, eager), the engine without the fast path, the
  engine with it; batch 1 and 4; seconds per image and peak GPU memory. The fast engine's
  first start is the cold warm-up (empty compile cache);
- warmup: a second engine start on the same compile cache: the cached warm-up;
- uncertainty: BayesDiff overhead at SD 1.5 512², DDIM, S=5, k=5 (bench/uncertainty.py --sd15);
- video: LOVECon 48 frames 512² and ControlVideo 8 frames (bench/video.py), seconds and peak;
- sdxl: SDXL architecture, 1024², the same three as sd15 at batch 1;
- sd35, flux (issue 21; on request: ``--only sd35 flux``, each needs most of a device call):
  SD3.5-medium and Flux.1-dev architectures with random weights (bench/flow_random.py, from
  resources/configs/sd3 and flux), bfloat16, 1024², 28 steps Flow Euler (SD3.5: CFG 4.5;
  Flux: distilled guidance 3.5, CFG 1): plain diffusers, the engine, the engine with
  ``--fast-path on`` (whose state is recorded: the fast path compiles UNets only, so on these
  it stays off and the row shows what that costs).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: name → seconds it may take on an H100 (the order is the order they run in: most wanted first)
STAGES: dict[str, int] = {
    "tests": 75,
    "sd15": 150,
    "warmup": 45,
    "uncertainty": 55,
    "video": 90,
    "sdxl": 120,
    "sd35": 200,
    "flux": 300,
}
#: Stages a plain run leaves out (the flow models need a device call of their own:
#: ``--only sd35 flux``); the dry run runs them.
ON_REQUEST = ("sd35", "flux")
#: The flow stages' recipe: steps, CFG and Flux's distilled guidance.
FLOW_RECIPES = {
    "sd35": {"steps": 28, "cfg_scale": 4.5, "flow": None},
    "flux": {"steps": 28, "cfg_scale": 1.0, "flow": {"guidance": 3.5}},
}
DEFAULT_BUDGET = 540  # 9 minutes
PROMPT = "a photo of a red fox in the snow, detailed, 35mm"


# ---------------------------------------------------------------------------------- helpers


class Partial:
    """A stage's figures, rewritten to disk after each one so a cut stage keeps them."""

    def __init__(self, path: Path) -> None:
        self.path, self.data = path, {}

    def set(self, key: str, value) -> None:
        node = self.data
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
        self.path.write_text(json.dumps(self.data, indent=1))


def _gib(n: float) -> float:
    return round(n / 2**30, 2)


def _toy(args) -> dict:
    """Sizes per mode: the issue's on a GPU, toy ones for the dry run."""
    if args.dry_run:
        return {
            "device": "cpu",
            "size": 64,
            "xl_size": 64,
            "steps": 3,
            "batches": (1, 2),
            "repeats": 1,
            "frames": 4,
            "cv_frames": 2,
            "video_steps": 2,
            "tuning": 2,
        }
    return {
        "device": "cuda",
        "size": 512,
        "xl_size": 1024,
        "steps": 25,
        "batches": (1, 4),
        "repeats": 3,
        "frames": 48,
        "cv_frames": 8,
        "video_steps": 50,
        "tuning": 80,
    }


def _model_dir(arch: str, args, work: Path) -> Path:
    """SD-architecture random weights from resources/configs (GPU), or the embedded tiny model
    copied (dry run)."""
    if args.dry_run:
        out = work / f"{arch}-toy"
        if not out.exists():
            shutil.copytree(REPO / "resources/models/sfumato-tiny", out)
        return out
    import torch

    from bench.gpu_generate import build_random_pipeline

    out = work / f"{arch}-random"
    if not out.exists():
        build_random_pipeline(arch, out, torch.float16)
    return out


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------- stages


def stage_tests(args, part: Partial, work: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "gpu",
        "-q",
        "-p",
        "no:cacheprovider",
        str(REPO / "tests" / "gpu"),
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    tail = (proc.stdout + proc.stderr)[-6000:]
    (work / "pytest-gpu.log").write_text(proc.stdout + proc.stderr)
    print(tail, flush=True)
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|errors?|skipped)", tail)}
    part.set(
        "tests",
        {
            "passed": counts.get("passed", 0),
            "failed": counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0),
            "skipped": counts.get("skipped", 0),
        },
    )


def _plain(model_dir: Path, sizes: dict, batch: int, size: int) -> tuple[float, float]:
    """Plain diffusers, eager, fp16 (fp32 on the CPU), DPM++ 2M: (s/image, peak GiB)."""
    import torch
    from diffusers import DiffusionPipeline, DPMSolverMultistepScheduler

    device = sizes["device"]
    dtype = torch.float16 if device == "cuda" else torch.float32
    pipe = DiffusionPipeline.from_pretrained(
        model_dir, torch_dtype=dtype, local_files_only=True, safety_checker=None
    ).to(device)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(
        pipe.scheduler.config, algorithm_type="dpmsolver++", solver_order=2
    )
    pipe.set_progress_bar_config(disable=True)

    def run() -> float:
        gens = [torch.Generator("cpu").manual_seed(i) for i in range(batch)]
        _sync(device)
        t = time.perf_counter()
        pipe(
            PROMPT,
            width=size,
            height=size,
            num_inference_steps=sizes["steps"],
            guidance_scale=7.5,
            num_images_per_prompt=batch,
            generator=gens,
        )
        _sync(device)
        return (time.perf_counter() - t) / batch

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    run()
    s = statistics.median(run() for _ in range(sizes["repeats"]))
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else 0
    pipe = None  # frees the weights before the engine's turn
    if device == "cuda":
        torch.cuda.empty_cache()
    return s, _gib(peak)


async def _engine(
    model_dir: Path,
    sizes: dict,
    batches,
    size: int,
    fast: bool,
    data: Path,
    part: Partial,
    prefix: str,
    warm_key: str | None = None,
    recipe: dict | None = None,
    extra_args: tuple[str, ...] = (),
) -> None:
    """The engine over HTTP (submit → image on disk), DPM++ 2M (or ``recipe``'s sampler and
    settings), per batch: s/image, and peak. With ``recipe`` (the flow models) the fast path's
    state is recorded instead of required."""
    import aiohttp

    from tests.support.engine_proc import EngineProcess

    data.mkdir(parents=True, exist_ok=True)
    engine = EngineProcess(
        data,
        model_dir.parent,
        extra_args=[
            "--model",
            model_dir.name,
            "--device",
            sizes["device"],
            "--fast-path",
            "on" if fast else "off",
            *extra_args,
        ],
    ).start(timeout=300)
    try:
        async with aiohttp.ClientSession() as s:
            h = engine.headers

            async def health() -> dict:
                async with s.get(f"{engine.url}/v1/health", headers=h) as r:
                    return await r.json()

            t0 = time.perf_counter()
            async with s.post(
                f"{engine.url}/v1/models/load", headers=h, json={"id": model_dir.name}
            ) as r:
                assert r.status < 300, await r.text()
            if fast:
                while (state := (await health())["fast_path"]) == "warming up":
                    await asyncio.sleep(0.1)
                if recipe is not None:
                    part.set("fast_path_state", state)
                elif state != "on":
                    raise RuntimeError(f"fast path {state}: {(await health())['fast_path_detail']}")
                if warm_key:
                    part.set(warm_key, round(time.perf_counter() - t0, 2))
            for batch in batches:
                params = {
                    "prompt": PROMPT,
                    "width": size,
                    "height": size,
                    "steps": sizes["steps"],
                    "cfg_scale": 7.5,
                    "sampler": "DPM++ 2M",
                    "batch_size": batch,
                    "seed": 1,
                }
                if recipe is not None:
                    params.update(
                        {k: v for k, v in recipe.items() if v is not None}, sampler="Flow Euler"
                    )
                times = []
                for i in range(sizes["repeats"] + 1):  # the first is a warm-up
                    t = time.perf_counter()
                    async with s.post(
                        f"{engine.url}/v1/jobs",
                        headers=h,
                        json={"job": {"kind": "generate", "params": params}},
                    ) as r:
                        job = await r.json()
                    while True:
                        async with s.get(f"{engine.url}/v1/jobs/{job['id']}", headers=h) as r:
                            job = await r.json()
                        if job["state"] in ("done", "failed", "cancelled"):
                            break
                        await asyncio.sleep(0.005)
                    assert job["state"] == "done", job["message"]
                    if i:
                        times.append((time.perf_counter() - t) / batch)
                key = prefix if batch == 1 else f"batch{batch}.{prefix}"
                part.set(key, round(statistics.median(times), 4))
            peak = (await health())["memory_peak"]
            part.set(f"peak_gib.{prefix.removesuffix('_s_per_image')}", _gib(peak))
    finally:
        engine.stop()


def _three(args, part: Partial, work: Path, arch: str, batches, size: int) -> None:
    sizes = _toy(args)
    model_dir = _model_dir(arch, args, work)
    for batch in batches:
        s, peak = _plain(model_dir, sizes, batch, size)
        part.set(
            "plain_s_per_image" if batch == 1 else f"batch{batch}.plain_s_per_image", round(s, 4)
        )
        if batch == batches[0]:
            part.set("peak_gib.plain", peak)
    asyncio.run(
        _engine(
            model_dir,
            sizes,
            batches,
            size,
            False,
            work / f"{arch}-engine",
            part,
            "engine_s_per_image",
        )
    )
    asyncio.run(
        _engine(
            model_dir,
            sizes,
            batches,
            size,
            True,
            work / f"{arch}-fast",
            part,
            "fast_s_per_image",
            warm_key="warmup_cold_s",
        )
    )


def stage_sd15(args, part: Partial, work: Path) -> None:
    sizes = _toy(args)
    _three(args, part, work, "sd15", sizes["batches"], sizes["size"])


def stage_sdxl(args, part: Partial, work: Path) -> None:
    sizes = _toy(args)
    _three(args, part, work, "sdxl", (1,), sizes["xl_size"])


def _plain_flow(model_dir: Path, sizes: dict, size: int, recipe: dict) -> tuple[float, float]:
    """Plain diffusers on a flow pipeline: bfloat16 (float32 on the CPU), its own Flow Euler,
    eager: (s/image, peak GiB)."""
    import torch
    from diffusers import DiffusionPipeline

    device = sizes["device"]
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    pipe = DiffusionPipeline.from_pretrained(
        model_dir, torch_dtype=dtype, local_files_only=True
    ).to(device)
    pipe.set_progress_bar_config(disable=True)
    flux = type(pipe).__name__.startswith("Flux")
    guidance = (
        {"guidance_scale": recipe["flow"]["guidance"]}
        if flux
        else {"guidance_scale": recipe["cfg_scale"]}
    )

    def run() -> float:
        _sync(device)
        t = time.perf_counter()
        pipe(
            PROMPT,
            width=size,
            height=size,
            num_inference_steps=recipe["steps"],
            generator=torch.Generator("cpu").manual_seed(1),
            **guidance,
        )
        _sync(device)
        return time.perf_counter() - t

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    run()
    s = statistics.median(run() for _ in range(sizes["repeats"]))
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else 0
    pipe = None
    if device == "cuda":
        torch.cuda.empty_cache()
    return s, _gib(peak)


def _flow_stage(arch: str, args, part: Partial, work: Path) -> None:
    """Plain diffusers, the engine, the engine with the fast path on, for ``arch``'s random
    pipeline (bench/flow_random.py), then its weights are deleted (tens of GB)."""
    import torch

    from bench.flow_random import build_random_flow

    sizes = _toy(args)
    sizes = {**sizes, "repeats": 1 if not args.dry_run else sizes["repeats"]}
    recipe = dict(FLOW_RECIPES[arch])
    if args.dry_run:
        recipe["steps"] = sizes["steps"]
    device = sizes["device"]
    model_dir = work / f"{arch}-random"
    if not model_dir.exists():
        t = time.perf_counter()
        build_random_flow(
            arch,
            model_dir,
            torch.bfloat16 if device == "cuda" else torch.float32,
            device,
            tiny=args.dry_run,
        )
        part.set("build_s", round(time.perf_counter() - t, 1))
    try:
        size = sizes["xl_size"]
        s, peak = _plain_flow(model_dir, sizes, size, recipe)
        part.set("plain_s_per_image", round(s, 4))
        part.set("peak_gib.plain", peak)
        dtype = ("--dtype", "bf16") if device == "cuda" else ()
        for fast, prefix in ((False, "engine_s_per_image"), (True, "fast_s_per_image")):
            asyncio.run(
                _engine(
                    model_dir,
                    {**sizes, "steps": recipe["steps"]},
                    (1,),
                    size,
                    fast,
                    work / f"{arch}-{prefix}",
                    part,
                    prefix,
                    recipe=recipe,
                    extra_args=dtype,
                )
            )
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)


def stage_sd35(args, part: Partial, work: Path) -> None:
    _flow_stage("sd35", args, part, work)


def stage_flux(args, part: Partial, work: Path) -> None:
    _flow_stage("flux", args, part, work)


def stage_warmup(args, part: Partial, work: Path) -> None:
    """A second start of the fast engine on sd15's data folder (its compile cache): the time
    from asking for the model to the fast path being on."""
    sizes = _toy(args)
    model_dir = _model_dir("sd15", args, work)
    cache = work / "sd15-fast"
    if not (cache / "cache" / "torch-compile").is_dir():
        raise RuntimeError("the sd15 stage left no compile cache (was it cut?)")
    again = work / "warmup-again"
    shutil.rmtree(again, ignore_errors=True)
    shutil.copytree(cache / "cache", again / "cache")
    asyncio.run(
        _engine(
            model_dir,
            {**sizes, "repeats": 1},
            (1,),
            sizes["size"],
            True,
            again,
            part,
            "fast_s_per_image",
            warm_key="cached_s",
        )
    )


def stage_uncertainty(args, part: Partial, work: Path) -> None:
    cmd = [
        sys.executable,
        str(REPO / "bench/uncertainty.py"),
        "--steps",
        "25",
        "--samples",
        "5",
        "--skip",
        "5",
        "--repeats",
        "2",
    ]
    if args.dry_run:
        cmd = cmd[:2] + [
            "--steps",
            "3",
            "--samples",
            "2",
            "--skip",
            "2",
            "--repeats",
            "1",
            "--decodes",
            "2",
        ]
    else:
        cmd.append("--sd15")
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    print(out.stdout[-2000:], out.stderr[-3000:], flush=True)
    m = re.search(
        r"without uncertainty: ([\d.]+) s\s+with: ([\d.]+) s\s+ratio: ([\d.]+)", out.stdout
    )
    if not m:
        raise RuntimeError(f"bench/uncertainty.py gave no ratio (exit {out.returncode})")
    part.set("overhead", float(m.group(3)))
    part.set("plain_s", float(m.group(1)))
    part.set("with_s", float(m.group(2)))


def stage_video(args, part: Partial, work: Path) -> None:
    sizes = _toy(args)
    out_json = work / "video-runs.json"  # not video.json: that is this stage's Partial file
    cmd = [
        sys.executable,
        str(REPO / "bench/video.py"),
        "--device",
        sizes["device"],
        "--size",
        str(sizes["size"]),
        "--frames",
        str(sizes["frames"]),
        "--cv-frames",
        str(sizes["cv_frames"]),
        "--steps",
        str(sizes["video_steps"]),
        "--tuning-steps",
        str(sizes["tuning"]),
        "--out",
        str(out_json),
    ]
    if args.dry_run:
        cmd += ["--model-dir", str(REPO / "resources/models/sfumato-tiny")]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:  # one JSON line per finished run
        print(line, end="", flush=True)
        try:
            run = json.loads(line)
        except ValueError:
            continue
        if not isinstance(run, dict) or "total_s" not in run:
            continue
        peak = max((st.get("peak_gib", 0) for st in run["stages"].values()), default=0)
        if run["frames"] == sizes["frames"] and "lovecon_48_s" not in part.data:
            part.set("lovecon_48_s", run["total_s"])
            part.set("lovecon_48_peak_gib", peak)
            part.set("lovecon_48_stages", run["stages"])
        else:
            part.set("controlvideo_8_s", run["total_s"])
            part.set("controlvideo_8_stages", run["stages"])
    if proc.wait():
        raise RuntimeError(f"bench/video.py exited {proc.returncode}")


RUNNERS = {
    "tests": stage_tests,
    "sd15": stage_sd15,
    "warmup": stage_warmup,
    "uncertainty": stage_uncertainty,
    "video": stage_video,
    "sdxl": stage_sdxl,
    "sd35": stage_sd35,
    "flux": stage_flux,
}


# ---------------------------------------------------------------------------------- driver


def run_stage(name: str, args, timeout: float, work: Path) -> tuple[dict, dict]:
    """Run one stage in a subprocess; (its partial figures, {seconds, status})."""
    part_path = work / f"{name}.json"
    part_path.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", name, "--work", str(work)]
    if args.dry_run:
        cmd.append("--dry-run")
    t0 = time.perf_counter()
    with open(work / f"{name}.log", "w") as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            rc = proc.wait(timeout=max(timeout, 0.1))
            status = "ok" if rc == 0 else f"failed (exit {rc})"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the stage and the engines it started
            proc.wait()
            status = f"cut at {timeout:.0f} s"
    if status != "ok":
        tail = (work / f"{name}.log").read_text(errors="replace")[-1500:]
        print(f"--- {name}: {status}\n{tail}", flush=True)
    seconds = round(time.perf_counter() - t0, 1)
    data = json.loads(part_path.read_text()) if part_path.is_file() else {}
    return data, {"seconds": seconds, "status": status, "budget_s": STAGES[name]}


def collect(parts: dict[str, dict], stages: dict, dry_run: bool) -> dict:
    import diffusers
    import torch

    device = (
        "cpu (dry run)"
        if dry_run
        else (torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")
    )
    sd15 = parts.get("sd15", {})
    warm_cold = sd15.pop("warmup_cold_s", None)
    sdxl = parts.get("sdxl", {})
    sdxl.pop("warmup_cold_s", None)
    return {
        "device": device,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "tests": {k: parts.get("tests", {}).get("tests", {}).get(k) for k in ("passed", "failed")},
        "sd15": sd15,
        "sdxl": {
            k: sdxl.get(k) for k in ("plain_s_per_image", "engine_s_per_image", "fast_s_per_image")
        },
        "warmup": {"cold_s": warm_cold, "cached_s": parts.get("warmup", {}).get("cached_s")},
        "uncertainty": {"overhead": parts.get("uncertainty", {}).get("overhead")},
        "video": {
            k: parts.get("video", {}).get(k)
            for k in ("lovecon_48_s", "lovecon_48_peak_gib", "controlvideo_8_s")
        },
        **{arch: parts[arch] for arch in ON_REQUEST if arch in parts},
        "stages": stages,
    }


def _fmt(v, unit: str = "") -> str:
    return "—" if v is None else f"{v}{unit}"


def table(r: dict) -> str:
    sd, xl = r["sd15"], r["sdxl"]
    b4 = sd.get("batch4") or sd.get("batch2") or {}
    peak = sd.get("peak_gib", {})

    def ratio(a, b):
        return "—" if not a or not b else f"{a / b:.2f}×"

    rows = [
        "| figure | plain diffusers | engine | engine + fast path | target |",
        "|---|---|---|---|---|",
        (
            f"| SD 1.5 512², 25 steps DPM++ 2M, batch 1 (s/image) | "
            f"{_fmt(sd.get('plain_s_per_image'))} | {_fmt(sd.get('engine_s_per_image'))} | "
            f"{_fmt(sd.get('fast_s_per_image'))} | engine ≤ 1.05× plain; fast ≤ 0.20 s and ≥ 5× |"
        ),
        (
            f"| same, batch 4 (s/image) | {_fmt(b4.get('plain_s_per_image'))} | "
            f"{_fmt(b4.get('engine_s_per_image'))} | {_fmt(b4.get('fast_s_per_image'))} | |"
        ),
        (
            f"| same, peak GPU memory (GiB) | {_fmt(peak.get('plain'))} | {_fmt(peak.get('engine'))} |"
            f" {_fmt(peak.get('fast'))} | |"
        ),
        (
            f"| SDXL 1024², batch 1 (s/image) | {_fmt(xl.get('plain_s_per_image'))} | "
            f"{_fmt(xl.get('engine_s_per_image'))} | {_fmt(xl.get('fast_s_per_image'))} | fast ≤ 1.0 s |"
        ),
    ]
    names = {
        "sd35": "SD3.5-medium 1024², 28 steps Flow Euler, CFG 4.5",
        "flux": "Flux.1-dev 1024², 28 steps Flow Euler, guidance 3.5",
    }
    for arch in ON_REQUEST:
        f = r.get(arch)
        if f:
            state = f.get("fast_path_state")
            rows.append(
                f"| {names[arch]}, bf16 (s/image; peak GiB plain "
                f"{_fmt(f.get('peak_gib', {}).get('plain'))}) | {_fmt(f.get('plain_s_per_image'))}"
                f" | {_fmt(f.get('engine_s_per_image'))} | {_fmt(f.get('fast_s_per_image'))}"
                f"{f' (fast path {state})' if state else ''} | engine ≤ 1.05× plain |"
            )
    more = [
        "",
        "| figure | value | target |",
        "|---|---|---|",
        (
            f"| engine ÷ plain (SD 1.5, batch 1) | "
            f"{ratio(sd.get('engine_s_per_image'), sd.get('plain_s_per_image'))} | ≤ 1.05× |"
        ),
        (
            f"| plain ÷ fast (SD 1.5, batch 1) | "
            f"{ratio(sd.get('plain_s_per_image'), sd.get('fast_s_per_image'))} | ≥ 5× |"
        ),
        (
            f"| warm-up to first image, cold / cached (s) | {_fmt(r['warmup']['cold_s'])} / "
            f"{_fmt(r['warmup']['cached_s'])} | cached ≤ 5 s |"
        ),
        (
            f"| BayesDiff overhead (SD 1.5 512², DDIM, S=5, k=5) | "
            f"{_fmt(r['uncertainty']['overhead'], '×')} | ≤ 1.5× |"
        ),
        (
            f"| LOVECon 48 frames 512² (s, peak GiB) | {_fmt(r['video']['lovecon_48_s'])} s, "
            f"{_fmt(r['video']['lovecon_48_peak_gib'])} GiB | ≤ 15 s |"
        ),
        f"| ControlVideo 8 frames (s) | {_fmt(r['video']['controlvideo_8_s'])} | |",
        (
            f"| pytest -m gpu | {r['tests']['passed']} passed, {r['tests']['failed']} failed | "
            "0 failed |"
        ),
        "",
        "| stage | seconds | budget | status |",
        "|---|---|---|---|",
        *[
            f"| {k} | {v['seconds']} | {v['budget_s']} | {v['status']} |"
            for k, v in r["stages"].items()
        ],
    ]
    return "\n".join(rows + more)


def write_readme(path: Path, r: dict) -> None:
    """Replace the results section of docs/gpu/README.md (between the markers)."""
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    body = (
        f"{start}\n\n{r['device']}, {r['date']}, torch {r['torch']}, diffusers "
        f"{r['diffusers']}\n\n{table(r)}\n\n{end}"
    )
    text = path.read_text() if path.is_file() else f"# GPU results\n\n{start}\n{end}\n"
    if start in text and end in text:
        text = text[: text.index(start)] + body + text[text.index(end) + len(end) :]
    else:
        text += "\n" + body + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU, toy sizes, results elsewhere")
    ap.add_argument("--budget", type=float, default=DEFAULT_BUDGET, help="seconds for all stages")
    ap.add_argument("--only", nargs="+", choices=list(STAGES), help="run these stages only")
    ap.add_argument(
        "--out-dir",
        type=Path,
        help="where results.json and README.md go "
        "(default docs/gpu; a temporary folder with --dry-run)",
    )
    ap.add_argument("--stage", choices=list(STAGES), help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.dry_run:
        # No inductor on the dry run: the fast path's wrapping, buckets, warm-up and cache
        # plumbing run, torch.compile does not (tests/engine/test_fast_path.py covers it).
        os.environ.setdefault("SFUMATO_COMPILE_BACKEND", "none")

    if args.stage:  # inside a stage's subprocess
        RUNNERS[args.stage](args, Partial(args.work / f"{args.stage}.json"), args.work)
        return 0

    out_dir = args.out_dir or (
        Path(tempfile.mkdtemp(prefix="gpu-suite-dry-")) if args.dry_run else REPO / "docs" / "gpu"
    )
    work = Path(tempfile.mkdtemp(prefix="gpu-suite-"))
    deadline = time.monotonic() + args.budget
    names = [
        n for n in STAGES if (n in args.only if args.only else args.dry_run or n not in ON_REQUEST)
    ]
    parts, stages = {}, {}
    for i, name in enumerate(names):
        left = deadline - time.monotonic()
        later = len(names) - i - 1
        timeout = min(STAGES[name], left - 10 * later) if not args.dry_run else left - 5 * later
        print(f"=== {name} (up to {timeout:.0f} s)", flush=True)
        parts[name], stages[name] = run_stage(name, args, timeout, work)
        print(
            f"    {stages[name]['status']} in {stages[name]['seconds']} s: "
            f"{json.dumps(parts[name])[:400]}",
            flush=True,
        )
    result = collect(parts, stages, args.dry_run)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    write_readme(out_dir / "README.md", result)
    print(table(result))
    print(f"\nwrote {out_dir / 'results.json'} and {out_dir / 'README.md'}; logs in {work}")
    shutil.rmtree(work / "sd15-random", ignore_errors=True)  # gigabytes of random weights
    shutil.rmtree(work / "sdxl-random", ignore_errors=True)
    return 0 if all(s["status"] == "ok" for s in stages.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
