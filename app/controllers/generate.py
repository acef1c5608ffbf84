"""The Prompt panel's jobs: generate, retry, BayesDiff variations; recipes put back into it.

Listens to ``generate`` jobs (and to any kind no other controller claims): the canvas follows
them and shows their previews and results (:class:`~app.controllers.canvas_jobs.CanvasJobs`).
A job asked for before the engine is ready waits in :attr:`GenerateController.pending` and is
sent after the next sync. A recipe comes back from the History, a dropped file or the canvas;
a size far from the loaded model's native one is said once, never refused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject

from engine.protocol import GenerateJob, GenerateParams, Job, UncertaintyOptions, kind_of

from ..client import ApiError, EngineClient
from ..library import Library
from ..recipe import RecipeError, describe, read_recipe
from ..session import ERROR, INFO, WARNING, EngineSession
from ..state import CanvasState, GenerationSettings, JobsState
from ..state.generation import field_of
from ..state.model_size import native_size, size_warning
from ..state.sampler import resolve
from .canvas_jobs import CanvasJobs
from .results import ResultsController

GENERATE_KIND = kind_of(GenerateJob)


class GenerateController(CanvasJobs):
    """Owned by :class:`app.controller.AppController` (``controller.generate_jobs``)."""

    def __init__(
        self,
        session: EngineSession,
        library: Library,
        results: ResultsController,
        generation: GenerationSettings,
        canvas: CanvasState,
        jobs: JobsState,
        parent: QObject | None = None,
    ):
        super().__init__((GENERATE_KIND,), session, library, canvas, jobs, parent)
        session.claim(None, self.handle_event)  # a kind nobody claimed shows like an image job
        self.generation, self.engine, self.results = generation, session.engine, results
        #: Jobs asked for while the engine was not ready: sent after the next sync.
        self.pending: list[GenerateParams] = []
        self._size_warned: tuple[int, int, str] | None = None  # see generate()
        self._model_id: str | None = None
        self.engine.health_changed.connect(lambda _h: self._follow_model_size())
        self.engine.models_changed.connect(lambda _m: self._follow_model_size())
        session.on_sync(self._on_sync)

    async def _on_sync(self, _client: EngineClient, _jobs: list[Job]) -> None:
        self.follow_running()
        samplers = self.engine.samplers
        known = self.known_sampler()
        if known is not None and not known(self.generation.sampler):
            lacking, self.generation.sampler = self.generation.sampler, samplers[0].name
            # e.g. a dropped A1111 recipe's "Restart", restored before the engine listed its
            # samplers: say so instead of switching in silence.
            self.session.notice.emit(
                WARNING,
                f"Sampler {lacking!r} is not one this engine has; using {samplers[0].name}.",
            )
        pending, self.pending = self.pending, []
        for params in pending:
            await self._submit(params)

    # ----------------------------------------------------------------- intents
    def generate(self) -> None:
        """Queue a job with the Prompt dock's settings (never blocked by a running job)."""
        params = self.generation.validated_params()
        if params is None:
            errors = self.generation.errors
            name, msg = next(iter(errors.items()))
            self.session.notice.emit(ERROR, f"{_label(name)}: {msg}")
            return
        size = self.size_warning()
        key = (
            params.width,
            params.height,
            self.engine.active_model.id if self.engine.active_model is not None else "",
        )
        if size and key != self._size_warned:  # once per size and model: a warning, not a nag
            self._size_warned = key
            self.session.notice.emit(WARNING, f"Queued anyway. {size}")
        self.retry(params)

    def retry(self, params: GenerateParams) -> None:
        """Queue ``params`` again as they were asked (the canvas's right-click → Retry)."""
        if not self.session.usable:
            self.pending.append(params)
            self.session.notice.emit(
                INFO, "The engine is not ready yet; the job will be sent when it is."
            )
            return
        self.session.spawn(self._submit(params))

    async def _submit(self, params: GenerateParams) -> None:
        client = self.session.client
        assert client is not None
        try:
            job = await client.submit(params)
        except ApiError as exc:
            errors = {field_of(f) or "": m for f, m in exc.field_messages().items()}
            errors.pop("", None)
            if errors:
                self.generation.set_errors(errors)
                name, msg = next(iter(errors.items()))
                self.session.notice.emit(ERROR, f"{_label(name)}: {msg}")
            else:
                self.session.notice.emit(ERROR, exc.message)
            return
        self.jobs.upsert(job)

    def make_variations(self, step: int, count: int) -> None:
        """BayesDiff's "variations from here": the shown image's recipe re-run to ``step``,
        each of ``count`` images resampling x_t from N(E[x_t], Var[x_t]), then finished."""
        image = self.canvas.current_image
        if image is None or image.params is None or image.seed is None or image.seed < 0:
            self.session.notice.emit(
                WARNING, "Open an image (with its recipe) to make variations of it."
            )
            return
        if not self.session.usable:
            self.session.notice.emit(WARNING, "The engine is not connected.")
            return
        base = image.params.with_seed(image.seed)
        group = (base.uncertainty or UncertaintyOptions()).model_copy(
            update={
                "map": True,
                "variation_step": max(0, min(step, base.steps - 1)),
                "variation_seed": -1,
            }
        )
        params = base.model_copy(
            update={"uncertainty": group, "batch_size": max(1, min(16, count)), "batch_count": 1}
        )
        self.session.spawn(self._submit(params))

    # ----------------------------------------------------------------- recipes in
    def use_settings(self, params: GenerateParams | None, source: str = "") -> None:
        """Put a recipe into the Prompt dock."""
        if params is None:
            self.session.notice.emit(WARNING, "No settings stored with this image.")
            return
        self.generation.apply(params)
        message = f"Settings restored{' from ' + source if source else ''}."
        size = self.size_warning()
        self.session.notice.emit(WARNING if size else INFO, f"{message} {size}".strip())

    def restore_from_file(self, path: Path | str) -> bool:
        """A file was dropped: restore its recipe (the current settings stay if that fails)."""
        path = Path(path)
        try:
            recipe = read_recipe(path)
        except RecipeError as exc:
            self.session.notice.emit(ERROR, str(exc))
            return False
        params = recipe.params
        self.generation.apply(params, fields=recipe.fields)
        warn, message = describe(recipe, path.name, self.known_sampler())
        size = self.size_warning()
        if size and ("width" in recipe.fields or "height" in recipe.fields):
            warn, message = True, f"{message} {size}"
        self.session.notice.emit(WARNING if warn else INFO, message)
        self.session.spawn(self.results.show_file(path, params))
        return True

    def size_warning(self) -> str:
        """A sentence when the Prompt panel's size is far from the loaded model's native size
        (state/model_size.py), else ''."""
        g = self.generation
        return size_warning(g.width, g.height, self.engine.active_model)

    def known_sampler(self) -> Callable[[str], bool] | None:
        """``name -> bool`` for the engine's samplers (aliases included), or None before the
        engine has listed them."""
        samplers = self.engine.samplers
        if not samplers:
            return None
        return lambda name: resolve(name, samplers)[0] is not None

    def _follow_model_size(self) -> None:
        """When the loaded model changes, move an untouched size to the new model's native one.

        "Untouched" means the size still equals the previous model's native square (or the
        default 512): a size the user chose is never overridden.
        """
        model = self.engine.active_model
        if model is None or model.id == self._model_id:
            return
        previous = next((m for m in self.engine.models if m.id == self._model_id), None)
        self._model_id = model.id
        new = native_size(model)
        old = native_size(previous) if previous is not None else GenerateParams().width
        g = self.generation
        if new and old and new != old and (g.width, g.height) == (old, old):
            g.set_size(new, new)
            self.session.notice.emit(
                INFO, f"Size set to {new}×{new}, the native size of {model.name}."
            )


_LABELS = {
    "prompt": "Prompt",
    "negative_prompt": "Negative prompt",
    "width": "Width",
    "height": "Height",
    "steps": "Steps",
    "cfg_scale": "CFG scale",
    "sampler": "Sampler",
    "seed": "Seed",
    "batch_size": "Batch size",
    "batch_count": "Batch count",
    "model": "Model",
}


def _label(name: str) -> str:
    return _LABELS.get(name, name.replace("_", " ").capitalize())
