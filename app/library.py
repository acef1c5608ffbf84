"""The history index: one SQLite row per saved output image, newest first.

The PNGs themselves carry their full recipe; the index only makes listing and searching fast
without opening every file. It lives in the app's data directory next to ``outputs/``.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from engine.protocol import GenerateParams

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


@dataclass(frozen=True)
class HistoryEntry:
    """One saved output and its recipe."""

    id: int
    path: Path
    created: float
    prompt: str
    seed: int
    params_json: str
    width: int
    height: int
    job_id: str = ""

    @property
    def params(self) -> GenerateParams | None:
        """The recipe, with the image's actual seed; None if the stored JSON is unreadable."""
        try:
            return GenerateParams.model_validate_json(self.params_json).with_seed(self.seed)
        except ValueError:
            return None

    @property
    def exists(self) -> bool:
        return self.path.is_file()


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
        sql = ("SELECT id, path, created, prompt, seed, params, width, height, job_id,"
               " MAX(created) OVER (PARTITION BY COALESCE(NULLIF(job_id, ''), path)) AS newest"
               " FROM images")
        args: list[object] = []
        if search:
            sql += " WHERE prompt LIKE ?"
            args.append(f"%{search}%")
        sql += (" ORDER BY newest DESC, COALESCE(NULLIF(job_id, ''), path), path, id"
                " LIMIT ? OFFSET ?")
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


def poster_path(video: Path) -> Path:
    """Where a video result's first frame is saved: ``<name>.poster.png`` beside it."""
    return video.with_name(video.stem + ".poster.png")


def _entry(row: tuple) -> HistoryEntry:
    row = row[:9]  # entries() adds its sort key
    return HistoryEntry(row[0], Path(row[1]), row[2], row[3], row[4], row[5], row[6], row[7], row[8])

