"""Uploaded videos and images, kept under the engine's data dir (``uploads/<id>/``), each with
an ``info.json`` (:class:`UploadInfo`). Type and size are checked while the bytes arrive; videos
are probed at once, so a bad file is refused before any job names it."""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from engine.errors import EngineError, NotFound
from engine.local_paths import local_path
from engine.protocol import utcnow
from engine.video_protocol import IMAGE_SUFFIXES, MAX_UPLOAD_BYTES, VIDEO_SUFFIXES, UploadInfo


class UploadError(EngineError):
    status = 400


class TooLarge(UploadError):
    status = 413


#: Longest upload file name, in bytes (file systems allow 255; the folder adds none).
MAX_NAME_BYTES = 200


def check_upload_name(name: str) -> None:
    """A file name the upload can be stored under, or a 400 that says why not."""
    if any(ord(c) < 32 for c in name):
        raise UploadError(
            "The file name contains a control character (such as a NUL byte); rename the file",
            "name",
        )
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise UploadError(
            f"The file name is longer than {MAX_NAME_BYTES} bytes; rename the file", "name"
        )


def _could_be_id(text: str) -> bool:
    """Upload ids are short letters and digits (16 hex digits today)."""
    return bool(text) and len(text) <= 64 and text.isalnum()


class UploadStore:
    def __init__(self, root: Path, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    def kind_of(self, name: str) -> str:
        suffix = Path(name).suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            return "video"
        if suffix in IMAGE_SUFFIXES:
            return "image"
        raise UploadError(
            f"{name or 'The file'} is not a video or image Sfumato accepts: use "
            f"{', '.join(VIDEO_SUFFIXES + IMAGE_SUFFIXES)}",
            "name",
        )

    async def save(self, name: str, chunks: AsyncIterator[bytes]) -> UploadInfo:
        """Store the bytes; refuse a wrong type, an empty or too large file, an unreadable
        video. Runs probing in a thread."""
        import asyncio

        name = Path(name or "").name
        check_upload_name(name)
        kind = self.kind_of(name)
        upload_id = secrets.token_hex(8)
        folder = self.root / upload_id
        folder.mkdir(parents=True)
        path = folder / name
        size = 0
        try:
            with open(path, "wb") as f:  # noqa: ASYNC230 (local disk, chunks of 64 KiB)
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise TooLarge(
                            f"{name} is larger than {self.max_bytes // 2**20} MiB, the "
                            "upload limit",
                            "body",
                        )
                    f.write(chunk)
            if size == 0:
                raise UploadError(f"{name} is empty (0 bytes)", "body")
            info = await asyncio.to_thread(self._describe, upload_id, name, kind, path, size)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        (folder / "info.json").write_text(info.model_dump_json(indent=1))
        return info

    def _describe(self, upload_id: str, name: str, kind: str, path: Path, size: int) -> UploadInfo:
        width = height = 0
        probe = None
        if kind == "video":
            from engine.video.io import probe as probe_video

            probe = probe_video(path)
            width, height = probe.width, probe.height
        else:
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(path) as im:
                    im.verify()
                    width, height = im.size
            except Image.DecompressionBombError:
                raise UploadError(
                    f"{name} declares more pixels than Sfumato opens "
                    f"({Image.MAX_IMAGE_PIXELS:,} at most): a damaged file or a "
                    "decompression bomb",
                    "body",
                ) from None
            except (UnidentifiedImageError, OSError, SyntaxError):
                raise UploadError(
                    f"{name} is not an image Sfumato can read (corrupt or not PNG/JPEG/WebP)",
                    "body",
                ) from None
        return UploadInfo(
            id=upload_id,
            name=name,
            kind=kind,
            size_bytes=size,
            path=str(path),
            created_at=utcnow(),
            width=width,
            height=height,
            probe=probe,
        )

    def get(self, upload_id: str) -> UploadInfo:
        if not _could_be_id(upload_id):
            raise NotFound(f"No upload {upload_id!r}", "id")
        meta = self.root / upload_id / "info.json"
        if not meta.is_file():
            raise NotFound(f"No upload {upload_id!r}", "id")
        return UploadInfo.model_validate(json.loads(meta.read_text()))

    def delete(self, upload_id: str) -> UploadInfo:
        """Remove an upload and its folder; a job already running on it keeps its open file."""
        info = self.get(upload_id)
        shutil.rmtree(self.root / upload_id, ignore_errors=True)
        return info

    def list(self) -> list[UploadInfo]:
        if not self.root.is_dir():
            return []
        infos = [self.get(d.name) for d in self.root.iterdir() if (d / "info.json").is_file()]
        return sorted(infos, key=lambda i: i.created_at, reverse=True)

    def resolve(self, source: str, field: str = "source") -> Path:
        """An upload id or a path on the engine's machine → the file."""
        if _could_be_id(source) and (self.root / source / "info.json").is_file():
            return Path(self.get(source).path)
        path = local_path(source)
        if source and path is not None and path.is_file():
            return path
        if len(source) > 200:
            source = source[:200] + "…"
        raise EngineError(
            f"{source!r} is neither an upload id nor a video file on the engine's "
            "machine. Upload the clip first (POST /v1/uploads).",
            field,
        )
