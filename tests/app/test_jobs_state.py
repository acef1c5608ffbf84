from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from app.state.jobs import KEEP_FINISHED, JobsState
from engine.protocol import (
    GenerateJob,
    GenerateParams,
    Job,
    JobFinished,
    JobPreview,
    JobProgress,
    JobQueued,
    JobResult,
    JobStarted,
    JobState,
    QueueChanged,
    ResultImage,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def job(
    job_id: str,
    state: JobState = JobState.queued,
    *,
    batch_size: int = 1,
    batch_count: int = 1,
    minutes: int = 0,
    **kw,
) -> Job:
    params = GenerateParams(
        prompt=f"prompt {job_id}",
        width=64,
        height=64,
        steps=10,
        batch_size=batch_size,
        batch_count=batch_count,
    )
    return Job(
        id=job_id,
        kind="generate",
        state=state,
        spec=GenerateJob(params=params),
        created_at=T0 + timedelta(minutes=minutes),
        **kw,
    )


def result(index: int) -> ResultImage:
    return ResultImage(
        name=f"r{index}.png",
        path=f"/tmp/r{index}.png",
        index=index,
        seed=index,
        width=64,
        height=64,
    )


def test_queue_order_follows_events(qapp):
    s = JobsState()
    for i, jid in enumerate(["a", "b", "c"]):
        s.apply(JobQueued(job=job(jid, minutes=i)))
    assert [j.id for j in s.ordered()] == ["a", "b", "c"]
    s.apply(QueueChanged(order=["c", "a", "b"]))
    assert s.queued_ids() == ["c", "a", "b"]
    s.apply(JobStarted(job_id="c"))
    assert s.running is not None and s.running.id == "c"
    assert [j.id for j in s.ordered()] == ["c", "a", "b"]
    assert s.active_count == 3


def test_progress_preview_result_finished(qapp):
    s = JobsState()
    updates: list[str] = []
    previews: list[tuple] = []
    results: list[tuple] = []
    finished: list[tuple] = []
    s.job_updated.connect(updates.append)
    s.preview.connect(lambda *a: previews.append(a))
    s.result.connect(lambda *a: results.append(a))
    s.finished.connect(lambda *a: finished.append(a))
    s.apply(JobQueued(job=job("a", batch_size=2, batch_count=2)))
    s.apply(JobStarted(job_id="a"))
    s.apply(JobProgress(job_id="a", step=5, total=20, eta_s=3.0))
    item = s.get("a")
    assert item is not None
    assert (item.step, item.total, item.eta_s) == (5, 20, 3.0)
    assert item.progress == 0.25
    png = base64.b64encode(b"\x89PNG fake").decode()
    s.apply(JobPreview(job_id="a", step=5, index=1, width=8, height=8, png_b64=png))
    assert previews == [("a", 1, b"\x89PNG fake")]
    assert item.preview_slot(1) == 1
    s.apply(JobResult(job_id="a", image=result(0)))
    s.apply(JobResult(job_id="a", image=result(1)))
    s.apply(JobResult(job_id="a", image=result(1)))  # duplicates are ignored
    assert len(item.results) == 2
    assert item.preview_slot(0) == 2  # second batch: previews count within it
    assert item.preview_slot(3) == 3  # already job-wide
    done = job(
        "a",
        JobState.done,
        batch_size=2,
        batch_count=2,
        results=[result(i) for i in range(4)],
        finished_at=T0,
    )
    s.apply(JobFinished(job=done))
    assert item.state is JobState.done and item.progress == 1.0
    assert len(item.results) == 4
    assert finished == [("a", JobState.done)]
    assert [r[1].index for r in results] == [0, 1, 1]
    assert "a" in updates


def test_failed_job_keeps_its_message(qapp):
    s = JobsState()
    s.apply(JobQueued(job=job("a")))
    s.apply(JobFinished(job=job("a", JobState.failed, message="Out of memory. Try smaller.")))
    item = s.get("a")
    assert item is not None and item.state is JobState.failed
    assert item.message == "Out of memory. Try smaller."
    assert s.active_count == 0


def test_cancelling_a_queued_job_leaves_the_running_one(qapp):
    s = JobsState()
    s.reset(
        [job("run", JobState.running, step=3, total=10), job("q1", minutes=1), job("q2", minutes=2)]
    )
    s.upsert(job("q1", JobState.cancelled, finished_at=T0))
    assert s.running is not None and s.running.id == "run" and s.running.step == 3
    assert s.queued_ids() == ["q2"]


def test_reset_and_trim(qapp):
    s = JobsState()
    many = [
        job(f"d{i}", JobState.done, finished_at=T0 + timedelta(seconds=i))
        for i in range(KEEP_FINISHED + 5)
    ]
    s.reset([job("q"), *many])
    assert len(s) == KEEP_FINISHED + 1
    newest = [j.id for j in s.ordered()][1]
    assert newest == f"d{KEEP_FINISHED + 4}"
    s.remove_finished()
    assert [j.id for j in s.ordered()] == ["q"]


def test_set_order_from_move_answer(qapp):
    s = JobsState()
    s.reset([job("a"), job("b", minutes=1)])
    s.set_order([job("b", minutes=1), job("a")])
    assert s.queued_ids() == ["b", "a"]


def test_a_late_submit_answer_does_not_send_a_running_job_back_to_the_queue(qapp):
    """The submit's answer (state queued) can arrive after the job's JobStarted and first
    JobProgress events: the job stays running, with its progress (seen in an e2e run: the
    Queue card flipped back to queued until the next progress event)."""
    s = JobsState()
    s.apply(JobQueued(job=job("a")))
    s.apply(JobStarted(job_id="a"))
    s.apply(JobProgress(job_id="a", step=3, total=10))
    s.upsert(job("a"))  # the answer to POST /v1/jobs, sent before the job started
    assert s.running is not None and s.running.id == "a" and s.running.step == 3
    assert s.queued_ids() == []
    s.apply(JobFinished(job=job("a", JobState.done)))
    s.upsert(job("a", JobState.running))  # a stale answer after the end changes nothing
    assert s.get("a").state is JobState.done and s.running is None


def test_a_reconnect_may_put_a_running_job_back_in_the_queue(qapp):
    """A restarted engine requeues the job it was running: the full list after a reconnect is
    the truth."""
    s = JobsState()
    s.apply(JobQueued(job=job("a")))
    s.apply(JobStarted(job_id="a"))
    s.reset([job("a")])
    assert s.get("a").state is JobState.queued and s.queued_ids() == ["a"]
