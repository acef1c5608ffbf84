"""Named training recipes: everything a run needs, sized to the time it gets.

A recipe gives each stage a **time budget** (seconds of wall time, the stage stops when it is
spent, whatever step it reached) instead of a step count, so one command fits the GPU time a
session is lent. The learning rate follows the fraction of the budget spent (warm-up, then a
cosine), so a stage that runs at half the expected speed still anneals.

``gpu-8min`` is sized for one H100: from the sprite archive to exported (fp16), evaluated
weights in under eight minutes. Its budgets, summed: 15 s data + 35 classifier + 60 VAE +
200 UNet + 50 ControlNet + ~10 export + ~60 evaluation ≈ 430 s, plus start-up, leaving about
a minute of slack. ``dry_run`` shrinks any recipe to a CPU run of a few seconds per stage with
every code path (the CI test, tests/training/test_recipe.py).

    python -m engine.training.train --recipe gpu-8min --work DIR [--dry-run]
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class StagePlan:
    """One training stage: seconds of wall time, batch, peak learning rate."""

    seconds: float
    batch: int
    lr: float


@dataclass(frozen=True)
class EvalPlan:
    """How much evaluation the recipe ends with (see engine/training/evaluate.py)."""

    prompts: int = 200
    fd_count: int = 2000
    controlnet_images: int = 48
    steps: int = 25
    batch: int = 50
    #: Subjects in the sample grid (x styles images).
    grid_subjects: int = 12


@dataclass(frozen=True)
class Recipe:
    name: str
    device: str
    preset: str
    #: Jittered copies of each (emoji, style, background); 1 was the CPU run's.
    variants: int
    classifier: StagePlan
    vae: StagePlan
    unet: StagePlan
    controlnet: StagePlan
    #: bf16 autocast for the forward passes (fp32 weights, optimizer state and losses).
    bf16: bool = True
    #: Stages whose training step goes through torch.compile (falls back to eager on error).
    compile: tuple[str, ...] = ()
    ema: float = 0.9995
    #: Only the first N emoji (the dry run).
    limit: int | None = None
    evaluation: EvalPlan = field(default_factory=EvalPlan)
    #: Steps between log lines.
    log_every: int = 200

    @property
    def train_seconds(self) -> float:
        return sum(p.seconds for p in (self.classifier, self.vae, self.unet, self.controlnet))


RECIPES: dict[str, Recipe] = {
    # One H100 (80 GB): the whole dataset and its latents live on the GPU. Batches are large
    # because these networks are small: at batch 32 an H100 step would be all kernel launches.
    # torch.compile is off: at these budgets its compile time (about a minute for the UNet's
    # forward and backward, by the launch-count arithmetic in docs/embedded-model.md) would
    # cost more steps than it saves; `--compile unet` turns it on for longer budgets.
    # The "wide" UNet (96-192-192, text width 192): 1.57x the shipped model's CPU time per
    # image, so about 1.3 s of the 2 s budget on 2 cores; 45 MB in fp16 with its ControlNet.
    "gpu-8min": Recipe(
        name="gpu-8min",
        device="cuda",
        preset="wide",
        variants=8,
        classifier=StagePlan(seconds=35, batch=512, lr=4e-3),
        vae=StagePlan(seconds=60, batch=256, lr=1e-3),
        unet=StagePlan(seconds=200, batch=512, lr=8e-4),
        controlnet=StagePlan(seconds=50, batch=512, lr=3e-4),
    ),
}


def dry_run(recipe: Recipe) -> Recipe:
    """The same recipe on the CPU with toy budgets, model and data: every stage, the export,
    the evaluation and the bundle run, in about a minute of two idle cores."""
    return replace(
        recipe,
        name=f"{recipe.name} (dry run)",
        device="cpu",
        preset="toy",
        variants=2,
        limit=6,
        classifier=StagePlan(seconds=1, batch=16, lr=recipe.classifier.lr),
        vae=StagePlan(seconds=2, batch=8, lr=recipe.vae.lr),
        unet=StagePlan(seconds=2, batch=8, lr=recipe.unet.lr),
        controlnet=StagePlan(seconds=1, batch=8, lr=recipe.controlnet.lr),
        bf16=False,
        compile=(),
        evaluation=EvalPlan(
            prompts=6, fd_count=6, controlnet_images=2, steps=2, batch=8, grid_subjects=2
        ),
        log_every=5,
    )
