"""Run a job's runner in-process, without the engine's queue: the JobContext surface runners
use (engine.jobs.JobContext), for tests and the golden set."""

from __future__ import annotations

from pathlib import Path

from engine.protocol import Job, JobState, utcnow


class InProcessContext:
    """What a runner calls on its context; results go into ``job.results``, stages into
    ``stages``; progress past the announced total fails (a runner's count is wrong)."""

    def __init__(self, loaded, job: Job, output_dir: Path) -> None:
        self.loaded, self.job, self.output_dir = loaded, job, output_dir
        self.model_folders: list[Path] = []  # where LoRAs and embeddings named in prompts are
        self.stages: list[str] = []

    def load_model(self, _model):
        return self.loaded

    def check_cancel(self) -> None:
        pass

    def begin(self, total, done=0, stage="sampling"):
        self.job.total, self.job.step = total, done
        self.stages.append(stage)

    def progress(self, step, stage="sampling"):
        assert step <= self.job.total, (step, self.job.total, stage)
        self.job.step = step
        return False  # no previews: they must not change the outputs anyway

    def preview(self, *args):
        pass

    def add_result(self, image):
        self.job.results.append(image)

    def saved_indices(self) -> set[int]:
        return {r.index for r in self.job.results if r.role == "image"}

    def batches_to_run(self, batch_count: int, batch_size: int) -> list[int]:
        saved = self.saved_indices()
        return [
            b
            for b in range(batch_count)
            if any(b * batch_size + i not in saved for i in range(batch_size))
        ]

    def free_memory(self) -> None:
        pass

    def save(self) -> None:
        pass


def make_job(spec, job_id: str = "0123456789abcdef") -> Job:
    """A running job of ``spec`` (the state a runner sees)."""
    return Job(id=job_id, kind=spec.kind, state=JobState.running, spec=spec, created_at=utcnow())
