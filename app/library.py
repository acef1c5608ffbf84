"""The library: result files on disk and their History index.

- :class:`Library` makes each engine result local (the engine's own file when it runs here,
  else downloaded into ``outputs/<date>/``), with its uncertainty map beside it, indexes it and
  adds it to the History; it indexes edited videos (by their poster), finds images that reached
  the outputs folder while the app was closed, and gives Queue cards of earlier sessions their
  pictures back.
- :class:`HistoryIndex` is one SQLite row per saved output, newest first. The PNGs themselves
  carry their full recipe; the index only makes listing and searching fast without opening
  every file. It lives in the app's data directory next to ``outputs/``.

Nothing here touches a widget; :class:`~app.state.history.HistoryState` is the History dock's
view onto the index.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.protocol import GenerateParams, Job, JobState, ResultImage

from .client import EngineError
from .recipe import RecipeError, recipe_from_file
from .session import WARNING
from .state.canvas_image import CanvasImage
from .state.history import HistoryEntry, HistoryState
from .state.uncertainty import UncertaintyMap, find_map, load_map, map_path

if TYPE_CHECKING:
    from .session import EngineSession
    from .state.jobs import JobsState

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    path    TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    prompt  TEXT NOT NULL DEFAULT '',
    seed    INTEGER NOT NULL DEFAULT -1,
    params  TEXT NOT NULL DEFAULT '{}',
    width   INTEGER NOT NULL DEFAULT 0,
    height  INTEGER NOT NULL DEFAULT 0,
    job_id  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS images_created ON images(created DESC);
"""


class HistoryIndex:
    """A small SQLite table of saved images. Cheap calls; safe to use on the UI thread."""

    def __init__(self, db_path: Path | str):
        self.db_path = Path(db_path) if str(db_path) != ":memory:" else db_path
        if isinstance(self.db_path, Path):
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(db_path))
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def add(
        self,
        path: Path | str,
        params: GenerateParams,
        *,
        seed: int | None = None,
        width: int | None = None,
        height: int | None = None,
        created: float | None = None,
        job_id: str = "",
    ) -> HistoryEntry:
        """Index an image (re-indexing the same path replaces its row)."""
        seed = params.seed if seed is None else seed
        row = (
            str(Path(path).resolve()),
            time.time() if created is None else created,
            params.prompt,
            seed,
            params.with_seed(seed).model_dump_json(),
            width or params.width,
            height or params.height,
            job_id,
        )
        cur = self._db.execute(
            "INSERT OR REPLACE INTO images (path, created, prompt, seed, params, width, height,"
            " job_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        self._db.commit()
        return HistoryEntry(cur.lastrowid or 0, Path(row[0]), *row[1:])  # type: ignore[arg-type]

    def entries(self, limit: int = 500, offset: int = 0, search: str = "") -> list[HistoryEntry]:
        """Newest job first, a job's images in the order it made them (their file names carry
        the batch index: job-000, job-001…), so a batch reads 1, 2, 3, 4 as it was generated;
        ``search`` filters by a case-insensitive substring of the prompt."""
        sql = (
            "SELECT id, path, created, prompt, seed, params, width, height, job_id,"
            " MAX(created) OVER (PARTITION BY COALESCE(NULLIF(job_id, ''), path)) AS newest"
            " FROM images"
        )
        args: list[object] = []
        if search:
            sql += " WHERE prompt LIKE ?"
            args.append(f"%{search}%")
        sql += (
            " ORDER BY newest DESC, COALESCE(NULLIF(job_id, ''), path), path, id LIMIT ? OFFSET ?"
        )
        args += [limit, offset]
        return [_entry(r) for r in self._db.execute(sql, args)]

    def by_job(self, job_id: str) -> list[HistoryEntry]:
        """The images of one job, in file-name order (the engine numbers them by index)."""
        rows = self._db.execute(
            "SELECT id, path, created, prompt, seed, params, width, height, job_id FROM images"
            " WHERE job_id = ? ORDER BY path",
            (job_id,),
        )
        return [_entry(r) for r in rows]

    def get(self, path: Path | str) -> HistoryEntry | None:
        row = self._db.execute(
            "SELECT id, path, created, prompt, seed, params, width, height, job_id FROM images"
            " WHERE path = ?",
            (str(Path(path).resolve()),),
        ).fetchone()
        return _entry(row) if row else None

    def __contains__(self, path: object) -> bool:
        return isinstance(path, (str, Path)) and self.get(path) is not None

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM images").fetchone()[0]

    def paths(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT path FROM images")}

    def remove(self, path: Path | str) -> None:
        self._db.execute("DELETE FROM images WHERE path = ?", (str(Path(path).resolve()),))
        self._db.commit()


#: Results the History lists that are not images: shown by their poster (first frame) PNG.
VIDEO_SUFFIXES = (".mp4",)


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def thumbnail_source(path: Path) -> Path:
    """The image that stands for ``path`` in lists: itself, or a video's poster beside it."""
    return poster_path(path) if is_video(path) else path


#: The longest side of the picture a Queue card keeps of its job (a 44 px label, at 2× on HiDPI).
CARD_PICTURE = 96


def small_png(data: bytes, size: int = CARD_PICTURE) -> bytes:
    """``data`` (a PNG) shrunk to fit ``size`` pixels, as PNG: what a Queue card keeps of its
    job instead of the full result (a 1024² PNG is ~1.5 MB; this is a few KB). Data that is
    already small, or that does not decode, comes back as it is."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            if max(im.size) <= size:
                return data
            im.thumbnail((size, size))
            out = io.BytesIO()
            im.save(out, "PNG")
            return out.getvalue()
    except (UnidentifiedImageError, OSError, ValueError):
        return data


def poster_path(video: Path) -> Path:
    """Where a video result's first frame is saved: ``<name>.poster.png`` beside it."""
    return video.with_name(video.stem + ".poster.png")


def _entry(row: tuple) -> HistoryEntry:
    row = row[:9]  # entries() adds its sort key
    return HistoryEntry(
        row[0], Path(row[1]), row[2], row[3], row[4], row[5], row[6], row[7], row[8]
    )


@dataclass(frozen=True)
class LocalResult:
    """One engine result made local: what a controller puts on the canvas."""

    job_id: str
    image: ResultImage
    path: Path
    data: bytes
    uncertainty: UncertaintyMap | None


#: How many stored results :class:`Library` remembers (a job's results arrive within minutes).
KEEP_STORED = 4096

#: How a feature shows a result as it lands (None: stored without showing).
ShowResult = Callable[[LocalResult], None]


class Library:
    """Result files and the History: owned by :class:`app.controller.AppController`."""

    def __init__(
        self, session: EngineSession, index: HistoryIndex, history: HistoryState, jobs: JobsState
    ):
        self.session, self.index, self.history, self.jobs = session, index, history, jobs
        #: (job id, file name) of the results stored lately, oldest first: a result announced
        #: twice (its event, then its finished job) is stored once. Only recent jobs can be
        #: announced again, so a long session keeps the last :data:`KEEP_STORED`.
        self._stored: OrderedDict[tuple[str, str], None] = OrderedDict()

    @property
    def output_dir(self) -> Path:
        return self.session.output_dir

    def stored(self, job_id: str, name: str) -> bool:
        """This result was stored (or is being stored) in this session."""
        return (job_id, name) in self._stored

    async def store_result(
        self, job_id: str, image: ResultImage, show: ShowResult | None = None
    ) -> None:
        """Make the result local (engine wrote it here, or download it), index it, show it."""
        key = (job_id, image.name)
        if key in self._stored or image.role == "video":
            return
        self._stored[key] = None
        while len(self._stored) > KEEP_STORED:
            self._stored.popitem(last=False)
        loop = asyncio.get_running_loop()
        local_path = Path(image.path)
        client = self.session.client
        if not self.session.engine.remote and local_path.is_file():
            data = await loop.run_in_executor(None, local_path.read_bytes)
            path = local_path
        else:
            if client is None:
                self._stored.pop(key, None)
                return
            data = await client.file(job_id, image.name)
            # Same layout as the local engine: outputs/<date>/<name>.
            folder = self.output_dir / time.strftime("%Y-%m-%d")
            path = await loop.run_in_executor(None, save_unique, folder, image.name, data)
        umap = await self._fetch_map(job_id, image, path) if image.uncertainty else None
        if show is not None:
            show(LocalResult(job_id, image, path, data, umap))
        if not self.jobs.has_picture(job_id):
            self.jobs.set_thumbnail(job_id, await loop.run_in_executor(None, small_png, data))
        item = self.jobs.get(job_id)
        params = item.params if item is not None and item.params is not None else None
        if params is None:
            try:
                params = await loop.run_in_executor(None, recipe_from_file, path)
            except RecipeError:
                params = GenerateParams(width=image.width, height=image.height)
        entry = self.index.add(
            path, params, seed=image.seed, width=image.width, height=image.height, job_id=job_id
        )
        self.history.add(entry)

    def store_missing(self, job: Job, show: ShowResult | None = None) -> None:
        """A finished job's results this session has not stored: results announced before
        the app connected arrive only with the finished job."""
        for image in job.results:
            if not self.stored(job.id, image.name):
                self.session.spawn(self.store_result(job.id, image, show))

    async def store_video(
        self,
        job_id: str,
        path: Path,
        poster: bytes,
        params: GenerateParams,
        seed: int | None,
        width: int,
        height: int,
    ) -> None:
        """An edited video enters the History (found by its target prompt, shown by its first
        frame, saved beside it as ``<name>.poster.png``)."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, poster_path(path).write_bytes, poster)
        except OSError as exc:
            log.warning("video poster %s: %s", poster_path(path), exc)
        entry = self.index.add(path, params, seed=seed, width=width, height=height, job_id=job_id)
        self.history.add(entry)

    async def on_sync(self, _client: object, jobs: list[Job]) -> None:
        """After a (re)connect: results finished while we were away (engine restart,
        reconnect) are on disk; finished Queue cards get their pictures back."""
        if not self.session.engine.remote:
            for job in jobs:
                for image in job.results:
                    if not self.stored(job.id, image.name) and image.path not in self.index:
                        self.session.spawn(self.store_result(job.id, image))
        self.session.spawn(self.restore_thumbnails())

    async def restore_thumbnails(self) -> None:
        """Queue cards of jobs finished in an earlier session get their picture back: the
        first image the History holds for each (a video's poster), read off the UI thread."""
        loop = asyncio.get_running_loop()
        for item in self.jobs.ordered():
            if item.thumbnail_final or item.state is not JobState.done:
                continue
            entries = [e for e in self.index.by_job(item.id) if thumbnail_source(e.path).is_file()]
            if not entries:
                continue
            try:
                data = await loop.run_in_executor(
                    None, thumbnail_source(entries[0].path).read_bytes
                )
            except OSError:
                continue
            self.jobs.set_thumbnail(item.id, await loop.run_in_executor(None, small_png, data))

    async def _fetch_map(self, job_id: str, image: ResultImage, png: Path) -> UncertaintyMap | None:
        """The image's uncertainty map, made local beside its PNG (downloaded from a remote
        engine), read into memory; None with a notice if it cannot be had."""
        info = image.uncertainty
        assert info is not None
        loop = asyncio.get_running_loop()
        engine_copy = Path(image.path).with_name(info.map_name)
        client = self.session.client
        try:
            if not self.session.engine.remote and engine_copy.is_file():
                target = engine_copy
            else:
                if client is None:
                    return None
                data = await client.file(job_id, info.map_name)
                target = map_path(png)
                await loop.run_in_executor(None, target.write_bytes, data)
            return await loop.run_in_executor(None, load_map, target, info.score)
        except (EngineError, OSError, ValueError) as exc:
            self.session.notice.emit(
                WARNING, f"The uncertainty map of {png.name} could not be read: {exc}"
            )
            return None

    async def load(
        self,
        path: Path,
        *,
        seed: int | None,
        width: int,
        height: int,
        params: GenerateParams | None,
    ) -> CanvasImage:
        """A saved image read off the UI thread, ready for the canvas."""
        data = await asyncio.get_running_loop().run_in_executor(None, path.read_bytes)
        return CanvasImage(
            data=data, path=path, seed=seed, width=width, height=height, params=params
        )

    async def maps_of(self, images: list[CanvasImage]) -> list[tuple[CanvasImage, UncertaintyMap]]:
        """Saved images shown again: their maps, where one was saved beside them."""
        loop = asyncio.get_running_loop()
        found = []
        for image in images:
            if image.path is not None and image.uncertainty is None:
                umap = await loop.run_in_executor(None, find_map, image.path)
                if umap is not None:
                    found.append((image, umap))
        return found

    async def scan_outputs(self) -> None:
        """Index images that reached the outputs folder while the app was closed."""
        folder = self.output_dir
        known = self.index.paths()
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(None, unindexed_pngs, folder, known)
        added = False
        for path, params, mtime in found:
            self.index.add(path, params, created=mtime)
            added = True
        if added:
            self.history.load()


def save_unique(folder: Path, name: str, data: bytes) -> Path:
    """Write ``data`` as ``folder/name``, adding ``-1``, ``-2``… rather than overwrite."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Path(name).name
    n = 1
    while target.exists():
        target = folder / f"{Path(name).stem}-{n}{Path(name).suffix}"
        n += 1
    target.write_bytes(data)
    return target


def unindexed_pngs(folder: Path, known: set[str]) -> list[tuple[Path, GenerateParams, float]]:
    """PNGs under ``folder`` with a readable recipe and no history row yet (worker thread)."""
    found: list[tuple[Path, GenerateParams, float]] = []
    if not folder.is_dir():
        return found
    start = time.monotonic()
    for path in folder.rglob("*.png"):
        if str(path.resolve()) in known:
            continue
        if time.monotonic() - start > 20 or len(found) > 2000:
            break
        try:
            params = recipe_from_file(path)
        except RecipeError:
            continue
        found.append((path, params, path.stat().st_mtime))
    return found
