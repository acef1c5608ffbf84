"""The job table in SQLite: what survives an engine crash or restart.

Jobs are stored with their full spec and results, so a restarted engine resumes the queue
(interrupted jobs go back to the front of it) and never forgets a finished output.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from engine.protocol import Job, JobState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    order_key INTEGER NOT NULL,
    state TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, order_key);
-- What the queue must remember about a job beyond its record: a cancel asked for while it ran
-- (so a crash before the next step does not run it again) and how many engine processes died
-- while it ran (so a job that kills the engine is failed, not resumed forever).
CREATE TABLE IF NOT EXISTS job_flags (
    id TEXT PRIMARY KEY,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    crashes INTEGER NOT NULL DEFAULT 0
);
"""


class JobStore:
    """Thread-safe persistence of :class:`Job` records, with the queue order of queued jobs."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        # The queued ids in memory, kept by put() (the only writer of a job's state): Health
        # reads their count on the event loop without waiting for this lock behind a burst of
        # submissions (bench/api_latency.py).
        self._queued_ids = {
            r[0]
            for r in self._db.execute("SELECT id FROM jobs WHERE state=?", (JobState.queued.value,))
        }

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(self, job: Job, order_key: int | None = None) -> None:
        with self._lock:
            if order_key is None:
                row = self._db.execute(
                    "SELECT order_key FROM jobs WHERE id=?", (job.id,)
                ).fetchone()
                order_key = row[0] if row else self._next_key()
            self._db.execute(
                "INSERT OR REPLACE INTO jobs(id, order_key, state, data) VALUES (?,?,?,?)",
                (job.id, order_key, job.state.value, job.model_dump_json()),
            )
            if job.state == JobState.queued:
                self._queued_ids.add(job.id)
            else:
                self._queued_ids.discard(job.id)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM jobs WHERE id=?", (job_id,)).fetchone()
        return Job.model_validate_json(row[0]) if row else None

    def queued(self) -> list[Job]:
        """Queued jobs in the order they will run."""
        return self._select("state=? ORDER BY order_key", (JobState.queued.value,))

    def queued_ids(self) -> list[str]:
        """Ids of the queued jobs in run order (no records parsed: cheap with many queued)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE state=? ORDER BY order_key", (JobState.queued.value,)
            ).fetchall()
        return [r[0] for r in rows]

    def count_queued(self) -> int:
        """How many jobs are queued, without the lock (a set's length is read atomically)."""
        return len(self._queued_ids)

    def next_queued(self) -> Job | None:
        """The queued job that runs next, if any."""
        jobs = self._select("state=? ORDER BY order_key LIMIT 1", (JobState.queued.value,))
        return jobs[0] if jobs else None

    def by_state(self, state: JobState) -> list[Job]:
        return self._select("state=? ORDER BY order_key", (state.value,))

    def recent(self, limit: int = 200) -> list[Job]:
        """Running and queued jobs first (in queue order), then the newest finished ones."""
        active = self.by_state(JobState.running) + self.queued()
        done = self._select(
            "state NOT IN (?,?) ORDER BY rowid DESC LIMIT ?",
            (JobState.running.value, JobState.queued.value, limit),
        )
        return active + done

    def reorder(self, ids: list[str]) -> None:
        """Put the queued jobs ``ids`` in this order, reusing the keys they hold."""
        with self._lock:
            marks = ",".join("?" * len(ids))
            keys = sorted(
                r[0]
                for r in self._db.execute(f"SELECT order_key FROM jobs WHERE id IN ({marks})", ids)
            )
            self._db.execute("BEGIN")
            for key, job_id in zip(keys, ids):
                self._db.execute("UPDATE jobs SET order_key=? WHERE id=?", (key, job_id))
            self._db.execute("COMMIT")

    def insert_key(self, priority: int) -> int:
        """A key that places a new job of ``priority`` after all queued jobs of equal or
        higher priority and before any of lower priority (shifting those back by one)."""
        with self._lock:
            row = self._db.execute(
                "SELECT order_key FROM jobs WHERE state=? "
                "AND COALESCE(json_extract(data, '$.priority'), 0) < ? "
                "ORDER BY order_key LIMIT 1",
                (JobState.queued.value, priority),
            ).fetchone()
            if row is not None:
                self._db.execute(
                    "UPDATE jobs SET order_key=order_key+1 WHERE order_key>=?", (row[0],)
                )
                return row[0]
            return self._next_key()

    def request_cancel(self, job_id: str) -> None:
        """Remember that the user cancelled the running job ``job_id`` (survives a crash)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO job_flags(id, cancel_requested) VALUES (?, 1) "
                "ON CONFLICT(id) DO UPDATE SET cancel_requested=1",
                (job_id,),
            )

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self._flag(job_id, "cancel_requested"))

    def count_crash(self, job_id: str) -> int:
        """One more engine process died while ``job_id`` ran; returns how many have."""
        with self._lock:
            self._db.execute(
                "INSERT INTO job_flags(id, crashes) VALUES (?, 1) "
                "ON CONFLICT(id) DO UPDATE SET crashes=crashes+1",
                (job_id,),
            )
            return self._flag(job_id, "crashes")

    def _flag(self, job_id: str, column: str) -> int:
        with self._lock:
            row = self._db.execute(
                f"SELECT {column} FROM job_flags WHERE id=?", (job_id,)
            ).fetchone()
        return row[0] if row else 0

    def integrity_check(self) -> str:
        """SQLite's own check of the database file: ``"ok"`` or the problems it found."""
        with self._lock:
            return "; ".join(r[0] for r in self._db.execute("PRAGMA integrity_check"))

    def _next_key(self) -> int:
        return self._db.execute("SELECT COALESCE(MAX(order_key),0)+1 FROM jobs").fetchone()[0]

    def _select(self, where: str, args: tuple) -> list[Job]:
        with self._lock:
            rows = self._db.execute(f"SELECT data FROM jobs WHERE {where}", args).fetchall()
        return [Job.model_validate_json(r[0]) for r in rows]
