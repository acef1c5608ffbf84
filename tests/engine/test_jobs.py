"""The job queue in-process, with runners that fail in the ways real jobs do."""

import threading
import time

import pytest

from engine.errors import EngineError
from engine.events import EventBus
from engine.jobs import JobQueue
from engine.models.loader import ModelManager
from engine.models.registry import ModelRegistry
from engine.protocol import GenerateJob, JobState
from engine.store import JobStore


@pytest.fixture
def make_queue(tmp_path):
    queues = []

    def make(runner):
        q = JobQueue(
            JobStore(tmp_path / "q.sqlite"),
            EventBus(),
            ModelManager("cpu"),
            ModelRegistry([]),
            tmp_path / "out",
            runners={"generate": runner},
        )
        q.start()
        queues.append(q)
        return q

    yield make
    for q in queues:
        q.stop()


def wait(queue, job_id, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = queue.get(job_id)
        if job.state.finished:
            return job
        time.sleep(0.01)
    raise TimeoutError(job_id)


def test_out_of_memory_fails_the_job_and_the_queue_goes_on(make_queue):
    import torch

    calls = []

    def runner(job, ctx):
        calls.append(job.id)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    q = make_queue(runner)
    a, b = q.submit(GenerateJob()), q.submit(GenerateJob())
    failed, ok = wait(q, a.id), wait(q, b.id)
    assert failed.state == JobState.failed and "Out of memory" in failed.message
    assert "smaller size" in failed.message
    assert ok.state == JobState.done


def test_engine_errors_keep_their_message_and_bugs_are_reported(make_queue):
    def runner(job, ctx):
        if job.spec.params.prompt == "user":
            raise EngineError("The model folder was deleted")
        raise ZeroDivisionError("boom")

    q = make_queue(runner)
    user = wait(q, q.submit(GenerateJob(params={"prompt": "user"})).id)
    bug = wait(q, q.submit(GenerateJob()).id)
    assert user.message == "The model folder was deleted"
    assert bug.state == JobState.failed and "ZeroDivisionError" in bug.message


def test_cancel_running_job_between_steps(make_queue):
    started = threading.Event()
    steps = []

    def runner(job, ctx):
        ctx.begin(1000)
        for i in range(1000):
            ctx.check_cancel()
            steps.append(i)
            started.set()
            time.sleep(0.005)

    q = make_queue(runner)
    job = q.submit(GenerateJob())
    started.wait(5)
    q.cancel(job.id)
    seen = len(steps)
    final = wait(q, job.id)
    assert final.state == JobState.cancelled
    assert len(steps) <= seen + 1


def test_a_cancel_asked_for_while_running_survives_a_crash(tmp_path):
    """DELETE on a running job, then the engine dies before the job's next step: the next
    engine finds the job cancelled, and does not run it again."""
    release = threading.Event()
    running = threading.Event()

    def runner(job, ctx):
        running.set()
        release.wait(10)  # stuck inside one long step: the cancel is not seen yet

    db = tmp_path / "q.sqlite"
    crashed = JobQueue(
        JobStore(db),
        EventBus(),
        ModelManager("cpu"),
        ModelRegistry([]),
        tmp_path / "out",
        runners={"generate": runner},
    )
    crashed.start()
    job = crashed.submit(GenerateJob())
    assert running.wait(5)
    answer = crashed.cancel(job.id)
    assert answer.state == JobState.running and "Cancelling" in answer.message
    # The "crash": a new engine opens the database while the old one never finished the job.
    ran = []
    restarted = JobQueue(
        JobStore(db),
        EventBus(),
        ModelManager("cpu"),
        ModelRegistry([]),
        tmp_path / "out",
        runners={"generate": lambda j, c: ran.append(j.id)},
    )
    restarted.start()
    try:
        again = restarted.get(job.id)
        assert again.state == JobState.cancelled and "Cancelled" in again.message
        time.sleep(0.3)
        assert ran == []
    finally:
        release.set()
        crashed.stop()
        restarted.stop()


def test_a_job_that_crashed_the_engine_three_times_is_failed(tmp_path):
    db = tmp_path / "q.sqlite"
    store = JobStore(db)
    q = JobQueue(
        store, EventBus(), ModelManager("cpu"), ModelRegistry([]), tmp_path / "out", runners={}
    )
    job = q.submit(GenerateJob())
    for crash in range(1, 4):
        record = store.get(job.id)
        assert record.state == JobState.queued, (crash, record.message)
        record.state = JobState.running  # what the worker stores when it starts the job
        store.put(record)
        # the engine dies; a new one opens the same database
        JobQueue(
            store, EventBus(), ModelManager("cpu"), ModelRegistry([]), tmp_path / "out", runners={}
        )
    final = store.get(job.id)
    assert final.state == JobState.failed
    assert "3 times" in final.message and "engine log" in final.message


def test_half_written_images_of_an_interrupted_job_are_removed(tmp_path):
    from engine.outputs import output_path

    store = JobStore(tmp_path / "q.sqlite")
    q = JobQueue(
        store, EventBus(), ModelManager("cpu"), ModelRegistry([]), tmp_path / "out", runners={}
    )
    job = q.submit(GenerateJob())
    job.state = JobState.running
    store.put(job)
    part = output_path(tmp_path / "out", job.id, 1, job.created_at).with_suffix(".png.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\x89PNG half")
    other = part.with_name("0123abcd-001.png.part")  # another job's: not touched
    other.write_bytes(b"x")
    JobQueue(
        store, EventBus(), ModelManager("cpu"), ModelRegistry([]), tmp_path / "out", runners={}
    )
    assert not part.exists() and other.exists()
    assert store.get(job.id).state == JobState.queued


def test_the_queued_count_follows_every_state_change_and_survives_a_reopen(tmp_path):
    """Health reads the count from memory (no lock behind a burst of submissions): it must agree
    with the database through submit, run, finish, cancel and a restart."""
    from engine.protocol import Job
    from engine.store import JobStore as Store

    db = tmp_path / "q.sqlite"
    store = Store(db)

    def count_in_db() -> int:
        return len(store.queued_ids())

    jobs = [
        Job(
            id=f"j{i}",
            kind="generate",
            state=JobState.queued,
            spec=GenerateJob(),
            created_at="2026-12-06T00:00:00Z",
        )
        for i in range(5)
    ]
    for job in jobs:
        store.put(job)
    assert store.count_queued() == count_in_db() == 5
    for job, state in zip(jobs, (JobState.running, JobState.done, JobState.cancelled)):
        store.put(job.model_copy(update={"state": state}))
        assert store.count_queued() == count_in_db()
    store.put(jobs[0].model_copy(update={"state": JobState.queued}))  # back to the queue
    assert store.count_queued() == count_in_db() == 3
    store.close()
    assert Store(db).count_queued() == 3
