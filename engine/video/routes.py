"""HTTP routes of the video work: uploads and control previews (transport only)."""

from __future__ import annotations

import asyncio
import base64
import io

from fastapi import APIRouter, Request

from engine.errors import EngineError
from engine.video_protocol import (
    MAX_EDIT_FRAMES,
    ControlPreview,
    ControlPreviewRequest,
    UploadInfo,
    VideoEditJob,
    missing_edit_phrase,
)


def video_router(engine, prefix: str) -> APIRouter:
    router = APIRouter(prefix=prefix)

    @router.post("/uploads", response_model=UploadInfo, status_code=201)
    async def upload(request: Request, name: str = "") -> UploadInfo:
        """Body: the file's raw bytes; ``?name=`` its file name (the suffix says its type)."""
        if not name:
            raise EngineError("Say the file's name: POST /v1/uploads?name=clip.mp4", "name")
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > engine.uploads.max_bytes:
            from engine.video.uploads import TooLarge

            raise TooLarge(
                f"{name} is larger than {engine.uploads.max_bytes // 2**20} MiB, the upload limit",
                "body",
            )
        return await engine.uploads.save(name, request.stream())

    @router.get("/uploads", response_model=list[UploadInfo])
    async def uploads() -> list[UploadInfo]:
        return await asyncio.to_thread(engine.uploads.list)

    @router.get("/uploads/{upload_id}", response_model=UploadInfo)
    async def upload_info(upload_id: str) -> UploadInfo:
        return engine.uploads.get(upload_id)

    @router.delete("/uploads/{upload_id}", response_model=UploadInfo)
    async def delete_upload(upload_id: str) -> UploadInfo:
        """Delete an uploaded file (answers what it was). Edits already made keep their results."""
        return await asyncio.to_thread(engine.uploads.delete, upload_id)

    @router.post("/video/control_preview", response_model=ControlPreview)
    async def control_preview(req: ControlPreviewRequest) -> ControlPreview:
        return await asyncio.to_thread(_control_preview, engine, req)

    return router


def _png_b64(array) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _control_preview(engine, req: ControlPreviewRequest) -> ControlPreview:
    from engine.video import annotators
    from engine.video.control import control_maps, preview_indices
    from engine.video.io import decode, probe, selected_indices

    # Before the device is read: a model unloaded from here on bumps the generation, and the
    # annotator this preview loads on the old device is used once, not cached.
    generation = annotators.generation()
    device = _annotator_device(engine)
    path = engine.uploads.resolve(req.source)
    # Only the `count` frames shown are kept, scaled as they are decoded: the preview's memory
    # does not grow with the clip (bench/video_memory.py).
    info = probe(path)
    pick = preview_indices(len(selected_indices(info.frames, req.frames)), req.count)
    clip = decode(
        path,
        req.frames,
        max_frames=None,
        size=(req.width, req.height, req.fit),
        keep=pick,
        info=info,
    )
    frames = clip.frames
    drawn = preview_indices(len(frames), len(frames) if req.map_count is None else req.map_count)
    maps_b64 = [""] * len(frames)
    if drawn:  # map_count 0: frames only, the control (and its annotator) is not touched
        maps = control_maps(frames[drawn], req.control, device, generation)
        for i, m in zip(drawn, maps, strict=True):
            maps_b64[i] = _png_b64(m)
    return ControlPreview(
        width=req.width,
        height=req.height,
        frame_indices=clip.indices,
        maps_png_b64=maps_b64,
        frames_png_b64=[_png_b64(f) for f in frames],
        damaged_frames=clip.damaged,
    )


def _annotator_device(engine) -> str:
    """The loaded model's device (where the edit will draw its maps too), else the CPU: a
    preview must not pick a GPU the engine is not using."""
    current = engine.models.current
    return current.device if current is not None else "cpu"


def check_video_edit(engine, job: VideoEditJob) -> VideoEditJob:
    """Refuse at submit what would fail later: unknown source, too many frames, a control type
    without weights, RIFE weights that are not there (where RIFE will run). Probing is cheap (packets only)."""
    from engine.video.io import probe, selected_indices

    p = job.params
    path = engine.uploads.resolve(p.source, "job.params.source")
    info = probe(path)
    n = len(selected_indices(info.frames, p.frames))
    if n > MAX_EDIT_FRAMES:
        raise EngineError(
            f"{n} frames are selected; at most {MAX_EDIT_FRAMES} can be edited in "
            "one job. Select a shorter range or a larger stride.",
            "job.params.frames",
        )
    if p.control.type != "canny":
        if not p.control.annotator:
            raise EngineError(
                f"{p.control.type} control needs its annotator's weights on disk; "
                "set control.annotator or use canny.",
                "job.params.control.annotator",
            )
        from engine.video.annotators import weights_file

        weights_file(p.control.type, p.control.annotator, "job.params.control.annotator")
    from engine.video.edit_job import find_controlnet

    find_controlnet(engine.queue.resolve_model(p.model), p.control, engine.config.models_dirs)
    if p.uses_rife:
        from engine.video.rife import weights_file

        weights_file(p.rife_weights)  # there (file or folder); its contents are read by the job
    phrase_problem = missing_edit_phrase(p)  # the job would fail after loading the model
    if phrase_problem:
        raise EngineError(phrase_problem, "job.params.edit_phrase")
    return job
