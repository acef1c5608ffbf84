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
        q = JobQueue(JobStore(tmp_path / "q.sqlite"), EventBus(), ModelManager("cpu"),
                     ModelRegistry([]), tmp_path / "out", runners={"generate": runner})
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
