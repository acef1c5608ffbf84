"""The ``video_edit`` job: decode → control maps → LOVECon or ControlVideo → encode MP4.

Progress stages: ``decoding``, ``control maps``, ``inversion (window k of n)`` and
``window k of n`` (LOVECon), ``tuning``, ``inversion``, ``sampling`` (ControlVideo),
``smoothing``, ``encoding``. Cancel is checked at every UNet step and tuning step.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from pathlib import Path

from engine.errors import EngineError
from engine.models.registry import RESOURCES
from engine.protocol import Job, ResultImage, VideoEditJob, VideoResult
from engine.video_protocol import MAX_EDIT_FRAMES, frame_ranges

log = logging.getLogger(__name__)


def find_controlnet(info, spec, models_dirs: list[Path]) -> Path:
    """The ControlNet folder: the one named (a path or a folder name in a models folder), else
    ``<model folder>-<type>`` beside the model (the embedded model's ``sfumato-tiny-canny``)."""
    if spec.controlnet:
        path = Path(spec.controlnet).expanduser()
        if (path / "config.json").is_file():
            return path
        for root in [RESOURCES / "models", *models_dirs]:
            if (root / spec.controlnet / "config.json").is_file():
                return root / spec.controlnet
        raise EngineError(
            f"No ControlNet {spec.controlnet!r}: give a diffusers ControlNet folder "
            "(with config.json) or its name in a models folder",
            "job.params.control.controlnet",
        )
    model_path = Path(info.path)
    for cand in (model_path.parent / f"{model_path.name}-{spec.type}", model_path / "controlnet"):
        if (cand / "config.json").is_file():
            return cand
    raise EngineError(
        f"No {spec.type} ControlNet is available for {info.name}. Put an SD 1.x ControlNet "
        f"(diffusers folder) on disk and name it in control.controlnet (e.g. "
        f"lllyasviel/sd-controlnet-{spec.type}).",
        "job.params.control.controlnet",
    )


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:24]


class _Progress:
    def __init__(self, ctx, total: int) -> None:
        self.ctx, self.done, self.stage = ctx, 0, ""
        self.stage_t0 = time.monotonic()
        self.stages: dict[str, float] = {}
        ctx.begin(total, stage="decoding")

    def __call__(self, stage: str, n: int) -> None:
        self.ctx.check_cancel()
        if stage != self.stage:
            self._close()
            self.stage = stage
        self.done += n
        self.ctx.progress(min(self.done, self.ctx.job.total), stage=stage)

    def _close(self) -> None:
        now = time.monotonic()
        if self.stage:
            key = self.stage.split(" (")[0]
            key = "editing" if key.startswith("window") else key
            self.stages[key] = round(self.stages.get(key, 0.0) + now - self.stage_t0, 3)
        self.stage_t0 = now

    def finish(self) -> dict[str, float]:
        self._close()
        self.stage = ""
        return self.stages


def run_video_edit(job: Job, ctx, uploads, cache_dir: Path, models_dirs: list[Path] = ()) -> None:
    import torch

    from engine.video import annotators, controlvideo, lovecon
    from engine.video.control import control_maps
    from engine.video.denoise import VideoNets, load_controlnet
    from engine.video.io import decode, encode_like, read_audio

    spec: VideoEditJob = job.spec
    p = spec.params
    source = uploads.resolve(p.source, "params.source")
    loaded = ctx.load_model(p.model)
    generation = annotators.generation()  # the annotator cache that goes with this model
    pipe = loaded.pipe
    if not all(hasattr(pipe, a) for a in ("unet", "vae", "text_encoder", "tokenizer")) or hasattr(
        pipe, "text_encoder_2"
    ):
        raise EngineError(
            f"Video editing needs a Stable Diffusion 1.x model; {loaded.info.name} "
            f"is {loaded.info.architecture}.",
            "params.model",
        )
    prog = _Progress(ctx, 1)
    prog("decoding", 0)
    clip = decode(source, p.frames, max_frames=MAX_EDIT_FRAMES, size=(p.width, p.height, p.fit))
    frames = clip.frames
    n = len(frames)
    # The sound is read now, not after minutes of diffusion: a track that cannot be read is
    # known (and left out, with a note) before any work it could waste.
    audio = read_audio(source, clip.start_s, clip.end_s) if clip.probe.has_audio else None
    notes = []
    if clip.damaged:
        notes.append(
            f"Source frames {frame_ranges(clip.damaged)} were damaged (decode "
            "errors); they were edited as decoded, or as the last good frame."
        )
    if clip.probe.has_audio and audio is None:
        notes.append("The source's audio could not be decoded; the video has none.")
    method = lovecon if p.method == "lovecon" else controlvideo
    ctx.job.total = method.units(n, p) + 2
    prog("control maps", 0)
    cn_path = find_controlnet(loaded.info, p.control, list(models_dirs))
    maps = control_maps(frames, p.control, loaded.device, generation)
    device = torch.device(loaded.device)
    dtype = loaded.dtype
    controlnet = load_controlnet(cn_path, device, dtype)
    nets = VideoNets.of(
        pipe, controlnet, loaded.base_scheduler_config, device, dtype, frame_chunk=p.frame_chunk
    )
    nets.layout.slice_batch = 1 if p.attention_slicing else 0
    prog("control maps", 1)
    with _memory_options(nets, p):
        if p.method == "lovecon":
            out = lovecon.edit(nets, frames, maps, p, prog)
            info = {}
        else:
            key = controlvideo.cache_key(file_hash(source), loaded.info.path, str(cn_path), p)
            out, info = controlvideo.edit(
                nets, frames, maps, p, prog, cache_dir / "controlvideo" / f"{key}.safetensors"
            )
    del controlnet, nets
    prog("encoding", 0)
    name = f"{job.id[:8]}-video.mp4"
    path = ctx.output_dir / job.created_at.strftime("%Y-%m-%d") / name
    notes += encode_like(out, path, clip, audio)
    prog("encoding", 1)
    stages = prog.finish()
    if info.get("cached"):
        stages["tuning (cached)"] = stages.pop("tuning", 0.0)
    ctx.add_result(
        ResultImage(
            name=name,
            path=str(path),
            index=0,
            seed=p.seed,
            width=p.width,
            height=p.height,
            role="video",
            video=VideoResult(
                frames=n,
                fps=round(clip.fps, 4),
                duration_s=round(n / clip.fps, 4),
                has_audio=audio is not None,
                method=p.method,
                stages_s=stages,
                damaged_frames=clip.damaged,
                notes=notes,
            ),
        )
    )


@contextlib.contextmanager
def _memory_options(nets, p):
    """fp32 for this job when fp16 is off on a half-precision model; VAE tiling."""
    import torch

    upcast = not p.fp16 and nets.dtype == torch.float16
    if upcast:
        for m in (nets.unet, nets.controlnet, nets.vae):
            m.float()
        nets.dtype = torch.float32
    if p.vae_tiling:
        nets.vae.enable_tiling()
    try:
        yield
    finally:
        if p.vae_tiling:
            nets.vae.disable_tiling()
        if upcast:
            for m in (nets.unet, nets.controlnet, nets.vae):
                m.half()
