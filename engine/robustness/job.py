"""The ``prompt_robustness`` job: which words is this image hanging on, which typos matter?

The plan (Gao et al. 2023, §3: word-importance ranking, then word-level perturbations):

1. group 0: ``samples`` images of the prompt, seeds ``seed … seed+samples−1``;
2. one group per word with that word deleted, the same seeds; the word's importance is the
   MMD² of its group against group 0 (a word whose deletion moves the images is one they hang on);
3. the ``top_k`` most important words (every word when ``top_k`` is None), each perturbed by every
   rule (:mod:`engine.robustness.perturb`); one group per perturbation, the same seeds, with its
   MMD² and permutation-test p-value against group 0.

Shared seeds make the comparison paired: every difference between groups comes from the prompt.
Each image is saved with its recipe; ``index = group * samples + i``. A restarted engine
resumes after the images already on disk: features are computed from the saved PNGs, so the
report comes out the same.
"""

from __future__ import annotations

import logging

from engine.errors import EngineError
from engine.prompts.job import PromptSession
from engine.protocol import Job, ResultImage, RobustnessJob
from engine.render import Batch, missing, render
from engine.robustness_protocol import (
    Perturbation,
    RobustnessGroup,
    RobustnessReport,
    WordImportance,
    replace_word,
    split_words,
)
from engine.sampling import prepare

log = logging.getLogger(__name__)


def render_batch_size(width: int, height: int) -> int:
    """Images per pipeline call: 8 at the built-in model's 64², 1 at 512² (memory-safe)."""
    return max(1, min(8, 262_144 // max(1, width * height)))


def run_prompt_robustness(job: Job, ctx, fits=None) -> None:
    from engine.robustness.features import features_for, load_rgb
    from engine.robustness.mmd import two_sample_test
    from engine.robustness.perturb import perturb

    spec: RobustnessJob = job.spec
    r = spec.params
    base = r.base
    words = split_words(base.prompt)
    if not words:
        raise EngineError(
            "The prompt has no words to probe: write a prompt first.", "job.params.base.prompt"
        )
    loaded = ctx.load_model(base.model)
    n = r.samples
    extractor = features_for(loaded)
    report = job.robustness or RobustnessReport(
        prompt=base.prompt,
        samples=n,
        seed=base.seed,
        features=extractor.note,
        permutations=r.permutations,
    )
    job.robustness = report
    if not report.groups:
        report.groups = [RobustnessGroup(group=0, kind="original", prompt=base.prompt)]
        for w in words:
            g = len(report.groups)
            report.groups.append(
                RobustnessGroup(group=g, kind="deletion", prompt=replace_word(base.prompt, w, ""))
            )
            report.words.append(WordImportance(index=w.index, word=w.text, group=g))

    renderer = _Renderer(job, ctx, loaded, base, fits, n)
    chosen_count = len(words) if r.top_k is None else min(r.top_k, len(words))
    renderer.begin(groups=1 + len(words) + chosen_count * len(r.rules))
    feats: dict[int, object] = {}

    def features(group: int):
        if group not in feats:
            paths = renderer.group(group, report.groups[group].prompt)
            feats[group] = extractor(load_rgb(paths))
        return feats[group]

    def compare(group: int, seed: int):
        res = two_sample_test(features(0), features(group), r.permutations, seed=seed)
        report.kernel = f"Gaussian, bandwidth {res.bandwidth:.3g} (median heuristic)"
        return res

    for w in report.words:
        res = compare(w.group, seed=w.group)
        w.mmd2, w.p_value = res.mmd2, res.p_value
        _scale_importance(report.words)
        ctx.save()

    if not report.perturbations:
        order = sorted(report.words, key=lambda w: (-(w.mmd2 or 0.0), w.index))
        chosen = order[:chosen_count]
        for w in chosen:
            for rule in r.rules:
                new = perturb(w.word, rule, r.perturb_seed)
                if new is None:
                    continue  # e.g. no sounds-alike spelling: nothing to test for this pair
                g = len(report.groups)
                prompt = replace_word(base.prompt, words[w.index], new)
                report.groups.append(RobustnessGroup(group=g, kind="perturbation", prompt=prompt))
                report.perturbations.append(
                    Perturbation(
                        group=g,
                        word_index=w.index,
                        rule=rule,
                        original=w.word,
                        replaced=new,
                        prompt=prompt,
                    )
                )
        renderer.begin(groups=len(report.groups))
        ctx.save()

    for pert in report.perturbations:
        res = compare(pert.group, seed=pert.group)
        pert.mmd2, pert.p_value = res.mmd2, res.p_value
        ctx.save()
    report.done = True
    ctx.save()


def _scale_importance(words: list[WordImportance]) -> None:
    known = [w.mmd2 for w in words if w.mmd2 is not None]
    top = max(known, default=0.0)
    for w in words:
        if w.mmd2 is not None:
            w.importance = w.mmd2 / top if top > 0 else 0.0


class _Renderer:
    """Renders a group's images (those not yet on disk) and reports progress across groups."""

    def __init__(self, job: Job, ctx, loaded, base, fits, samples: int) -> None:
        self.job, self.ctx, self.loaded, self.base, self.n = job, ctx, loaded, base, samples
        self.setup = prepare(loaded, base, fits)
        self.recipe = base.model_copy(
            update={"model": loaded.info.id, "batch_size": 1, "batch_count": 1, "uncertainty": None}
        )
        self.chunk = render_batch_size(base.width, base.height)

    def _done(self) -> dict[int, ResultImage]:
        return {res.index: res for res in self.job.results}

    def begin(self, groups: int) -> None:
        steps = self.base.steps
        self.ctx.begin(groups * self.n * steps, done=len(self._done()) * steps)

    def group(self, g: int, prompt: str) -> list[str]:
        """Render group ``g``'s images not on disk yet, ``chunk`` per pipeline call (the one
        render loop, engine/render.py), and return the paths of all its images."""
        p = self.base
        recipe = self.recipe.model_copy(update={"prompt": prompt})

        def batches():
            todo = missing((g * self.n + i for i in range(self.n)), self.ctx)
            for start in range(0, len(todo), self.chunk):
                part = todo[start : start + self.chunk]
                step0 = len(self._done()) * p.steps
                with PromptSession(
                    self.loaded, self.ctx.model_folders, [prompt, p.negative_prompt]
                ) as prompts:
                    cond = prompts.encode(
                        prompt, p.negative_prompt, p.cfg_scale, p.steps, p.clip_skip
                    )
                    yield Batch(
                        p,
                        recipe,
                        indices=part,
                        seeds=[(p.seed + index - g * self.n) % 2**32 for index in part],
                        setup=self.setup,
                        conditioning=cond,
                        progress_base=step0,
                        progress_weight=len(part),
                    )

        render(self.job, self.ctx, self.loaded, batches())
        done = self._done()
        return [done[g * self.n + i].path for i in range(self.n)]
