"""What the Robustness panel shows: the probe's settings, its job, its report and its images.

Plain observable state (no widgets): :class:`app.controllers.robustness.RobustnessController`
writes it from engine events, :class:`app.ui.robustness_dock.RobustnessDockWidget` reads it.
"""

from __future__ import annotations

from engine.protocol import RULES, GenerateParams, RobustnessParams, RobustnessReport

from .observable import Observable, Property


class RobustnessState(Observable):
    #: Images per prompt variant (N): more images, more power to see a small shift.
    samples = Property(8)
    #: Which rules to try ("typo", "glyph", "phonetic").
    rules = Property(list(RULES))
    #: Perturb the k most important words; 0 = every word.
    top_k = Property(3)
    #: The probe's job (its id once the engine accepted it).
    job_id = Property("")
    #: "", "queued", "running", "done", "failed", "cancelled".
    status = Property("")
    #: (step, total, eta seconds or None) of the running probe.
    progress = Property((0, 0, None))
    report = Property(None, doc="The RobustnessReport so far (None before the first group)")
    #: Result PNG bytes by image index (group * samples + i); replaced, never mutated.
    images = Property({})
    #: (level, text) for the panel's message line; level: info / warning / error / "".
    message = Property(("", ""))
    #: Seconds per image-step measured on this engine (None until a job has run).
    seconds_per_step = Property(None)

    def params(self, base: GenerateParams) -> RobustnessParams:
        """The request for probing ``base``'s prompt with the panel's settings."""
        return RobustnessParams(
            base=base.model_copy(update={"batch_size": 1, "batch_count": 1, "uncertainty": None}),
            samples=self.samples,
            rules=list(self.rules) or list(RULES),
            top_k=self.top_k or None,
        )

    def cost_text(self, base: GenerateParams) -> str:
        """What the probe will cost, said before it runs: images, steps and (once measured) time."""
        params = self.params(base)
        images = params.image_count()
        if images == 0 or not params.base.prompt.strip():
            return "Write a prompt in the Prompt panel first."
        text = f"Up to {images} images of {base.steps} steps"
        if self.seconds_per_step:
            seconds = images * base.steps * self.seconds_per_step
            text += f", about {duration_text(seconds)} here"
        return text + "."

    def group_images(self, group: int) -> list[bytes | None]:
        report: RobustnessReport | None = self.report
        n = report.samples if report is not None else self.samples
        return [self.images.get(group * n + i) for i in range(n)]

    def add_image(self, index: int, data: bytes) -> None:
        self.images = {**self.images, index: data}

    def reset(self) -> None:
        self.report, self.images, self.progress = None, {}, (0, 0, None)
        self.message = ("", "")


def duration_text(seconds: float) -> str:
    """'40 s', '12 min', '2.7 h'."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def significance(p_value: float | None) -> str:
    """A p-value in words an artist can act on."""
    if p_value is None:
        return ""
    if p_value < 0.01:
        return "clearly changes the images"
    if p_value < 0.05:
        return "changes the images"
    if p_value < 0.2:
        return "may change the images a little"
    return "no change detected"
