"""The Video panel's intents → engine requests, and the engine's events → :class:`VideoState`.

Open (upload + probe), control preview (frames for the player, maps for the strip), submit a
``video_edit`` job, follow its stages (the session routes that kind's events here), fetch the
MP4 and the result's frames, put it into the History through the library, export. Every engine
refusal lands in ``state.message`` with the engine's own words; nothing raises into Qt.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject

from engine.protocol import (
    ControlPreview,
    Event,
    GenerateParams,
    JobFinished,
    JobProgress,
    JobQueued,
    JobStarted,
    JobState,
    ResultImage,
    VideoEditJob,
    kind_of,
)
from engine.video_protocol import VIDEO_SUFFIXES

from ..client import EngineClient, EngineError
from ..library import Library, save_unique
from ..session import EngineSession
from ..state.model_size import native_size
from ..state.video import VideoFrames, VideoState, damaged_message

log = logging.getLogger(__name__)

VIDEO_KIND = kind_of(VideoEditJob)


class VideoController(QObject):
    """Owned by :class:`app.controller.AppController` (``controller.video_jobs``)."""

    def __init__(
        self,
        state: VideoState,
        session: EngineSession,
        library: Library,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.state, self.session, self.library = state, session, library
        self.engine, self.jobs = session.engine, session.jobs
        session.claim((VIDEO_KIND,), self.handle_event)
        self._preview_task: asyncio.Task[Any] | None = None
        self._preview_again = False

    # ----------------------------------------------------------------- helpers
    def _say(self, level: str, text: str) -> None:
        self.state.message = (level, text)

    def _usable_client(self) -> EngineClient | None:
        client = self.session.client
        if client is None or not self.engine.connection.usable:
            self._say("warning", "The engine is not connected yet; try again in a moment.")
            return None
        return client

    # ----------------------------------------------------------------- open
    def open_video(self, path: Path | str) -> asyncio.Task[Any] | None:
        """Upload a local clip to the engine, which probes it; then fetch the preview."""
        path = Path(path)
        if not path.is_file():
            self._say("error", f"{path.name or path} is not a file on this computer.")
            return None
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            # The engine would say the same; saying it here saves uploading a large file.
            self._say(
                "error",
                f"{path.name} is not a video Sfumato reads: use {', '.join(VIDEO_SUFFIXES)}.",
            )
            return None
        client = self._usable_client()
        if client is None:
            return None
        return self.session.spawn(self._open(client, path))

    async def _open(self, client: EngineClient, path: Path) -> None:
        s = self.state
        s.message = ("info", f"Sending {path.name} to the engine…")
        s.uploading = 0.0

        def progress(sent: int, total: int) -> None:
            s.uploading = sent / total if total else 1.0

        try:
            info = await client.upload(path, progress)
        except EngineError as exc:  # ApiError too: its str() is the engine's message
            s.message = ("error", str(exc))
            return
        finally:
            s.uploading = -1.0
        s.set_source(info, path)
        model = self.engine.active_model
        if model is not None:
            s.fit_size(native_size(model))
        s.message = ("", "")
        await self._preview(client)

    # ----------------------------------------------------------------- preview
    def refresh_preview(self) -> None:
        """Re-fetch the player's frames and the control maps (selection, size or control
        changed). Coalesces: at most one request in flight and one more after it."""
        if self.state.source is None or self.session.client is None:
            return
        if self._preview_task is not None and not self._preview_task.done():
            self._preview_again = True
            return
        self._preview_task = self.session.spawn(self._preview_loop())

    async def _preview_loop(self) -> None:
        while True:
            self._preview_again = False
            client = self.session.client
            if client is None:
                return
            await self._preview(client)
            if not self._preview_again:
                return

    async def _preview(self, client: EngineClient) -> None:
        s = self.state
        if s.source is None:
            return
        problems = s.problems()
        for key in ("start", "end", "stride", "width", "height", "low_threshold", "annotator"):
            if key in problems:
                s.message = ("warning", problems[key])
                return
        s.preview_busy = True
        try:
            answer = await client.control_preview(s.preview_request())
        except EngineError as exc:  # ApiError too: its str() is the engine's message
            s.message = ("error", str(exc))
            return
        finally:
            s.preview_busy = False
        s.preview = _frames(answer)
        s.position = min(s.position, max(0, len(answer.frame_indices) - 1))
        if answer.damaged_frames:
            s.message = ("warning", damaged_message(answer.damaged_frames))
        elif s.message[0] in ("warning", "error") and s.job_state != "failed":
            s.message = ("", "")

    # ----------------------------------------------------------------- edit
    def edit(self) -> asyncio.Task[Any] | None:
        s = self.state
        problems = s.problems()
        if problems:
            s.message = ("error", next(iter(problems.values())))
            return None
        if s.busy:
            s.message = ("info", "An edit is already running; cancel it first.")
            return None
        client = self._usable_client()
        if client is None:
            return None
        model = self.engine.active_model.id if self.engine.active_model else None
        return self.session.spawn(self._submit(client, s.to_params(model)))

    async def _submit(self, client: EngineClient, params) -> None:
        try:
            job = await client.submit_video_edit(params)
        except EngineError as exc:  # ApiError too: its str() is the engine's message
            self.state.message = ("error", str(exc))
            return
        self.jobs.upsert(job)
        self.state.job_submitted(job.id)

    def cancel(self) -> None:
        s = self.state
        client = self.session.client
        if not s.busy or client is None:
            return
        job_id = s.job_id

        async def go() -> None:
            try:
                await client.cancel(job_id)
            except EngineError as exc:
                s.message = ("error", str(exc))

        self.session.spawn(go())

    # ----------------------------------------------------------------- events
    def handle_event(self, event: Event) -> None:
        """Fold an event of a ``video_edit`` job into the state (the session routes them here:
        the canvas and the History leave them alone)."""
        if isinstance(event, JobQueued | JobFinished):
            job_id = event.job.id
        else:
            job_id = getattr(event, "job_id", "")
        s = self.state
        if job_id != s.job_id:
            return  # another window's (or an earlier session's) edit: the Queue shows it
        if isinstance(event, JobStarted):
            s.progress("starting", 0, 0, None)
        elif isinstance(event, JobProgress):
            s.progress(event.stage, event.step, event.total, event.eta_s)
        elif isinstance(event, JobFinished):
            job = event.job
            if job.state is JobState.done:
                video = next((r for r in job.results if r.role == "video"), None)
                if video is None:
                    s.finished("failed", "The engine finished without a video.")
                else:
                    self.session.spawn(self._fetch_result(job.id, video))
            else:
                s.finished(job.state.value, job.message)

    async def _fetch_result(self, job_id: str, res: ResultImage) -> None:
        """Make the MP4 local (the engine's own file when it runs here) and get its frames."""
        s = self.state
        client = self.session.client
        local = Path(res.path)
        try:
            if self.engine.remote or not local.is_file():
                if client is None:
                    raise EngineError("The engine went away before the video could be fetched.")
                data = await client.download(job_id, res.name)
                folder = self.library.output_dir / time.strftime("%Y-%m-%d")
                local = await asyncio.get_running_loop().run_in_executor(
                    None, save_unique, folder, res.name, data
                )
        except EngineError as exc:
            s.finished("failed", f"The edit finished but its video could not be fetched: {exc}")
            return
        v = res.video
        info = {
            "engine_path": res.path,
            "name": res.name,
            "width": res.width,
            "height": res.height,
            "frames": v.frames if v else 0,
            "fps": v.fps if v else 0.0,
            "duration_s": v.duration_s if v else 0.0,
            "has_audio": v.has_audio if v else False,
            "method": v.method if v else "",
            "stages_s": dict(v.stages_s) if v else {},
        }
        s.result_ready(local, info)
        s.finished("done")
        s.message = ("warning", " ".join(v.notes)) if v is not None and v.notes else ("", "")
        request = s.result_request()
        if client is None or request is None:
            return
        try:
            answer = await client.control_preview(request)
        except EngineError as exc:
            log.warning("result frames: %s", exc)
            s.message = (
                "warning",
                (
                    f"The video is saved, but its frames could not be shown: "
                    f"{getattr(exc, 'message', exc)}"
                ),
            )
            return
        s.result_frames = _frames(answer)
        if s.result_frames.frames:
            self.jobs.set_thumbnail(job_id, s.result_frames.frames[0])
            await self.store(job_id, local, s.result_frames.frames[0])

    async def store(self, job_id: str, path: Path, poster: bytes) -> None:
        """The edited video enters the History: found by its target prompt, shown by its
        first frame (``poster``)."""
        s = self.state
        info = s.result_info or {}
        width, height = int(info.get("width") or 0), int(info.get("height") or 0)
        params = GenerateParams(
            prompt=s.target_prompt, width=max(8, width or 512), height=max(8, height or 512)
        )
        await self.library.store_video(job_id, path, poster, params, s.seed, width, height)

    # ----------------------------------------------------------------- export
    def export(self, target: Path | str) -> Path | None:
        """Copy the edited MP4 to ``target``."""
        s = self.state
        if s.result_path is None or not Path(s.result_path).is_file():
            s.message = ("warning", "There is no edited video to export yet.")
            return None
        target = Path(target)
        if target.suffix.lower() != ".mp4":
            target = target.with_suffix(".mp4")
        try:
            shutil.copyfile(s.result_path, target)
        except OSError as exc:
            s.message = ("error", f"Could not save {target.name}: {exc.strerror or exc}")
            return None
        s.message = ("info", f"Saved {target.name}.")
        return target


def _frames(answer: ControlPreview) -> VideoFrames:
    return VideoFrames(
        indices=list(answer.frame_indices),
        frames=[base64.b64decode(b) for b in answer.frames_png_b64],
        maps=[base64.b64decode(b) for b in answer.maps_png_b64],
    )
