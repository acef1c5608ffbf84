"""Sampler comparison grids: what the Compare dialog asks for, and what the canvas shows."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.protocol import GenerateParams, GridCell, GridSampler, SamplerGridParams

from .canvas_image import CanvasImage

#: Sampler options a grid row may carry (the base recipe keeps the sampler-neutral fields).
ROW_OPTIONS = ("schedule", "timestep_spacing", "eta", "solver_order", "calibrated")
MAX_CELLS = 64


def parse_numbers(text: str, kind: type[int | float] = int) -> list:
    """``'10, 20 30'`` → ``[10, 20, 30]`` (order kept, duplicates dropped); ValueError if bad."""
    out: list = []
    for token in re.split(r"[\s,;]+", text.strip()):
        if not token:
            continue
        try:
            value = kind(token)
        except ValueError:
            raise ValueError(f"{token!r} is not a number") from None
        if value not in out:
            out.append(value)
    return out


@dataclass
class GridChoice:
    """Samplers × step counts (× CFG values) for the current prompt and seed."""

    samplers: list[str] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    cfg_scales: list[float] = field(default_factory=list)

    @property
    def cell_count(self) -> int:
        return len(self.samplers) * len(self.steps) * max(1, len(self.cfg_scales))

    def problem(self) -> str:
        """Why this choice cannot be submitted, or ''."""
        if not self.samplers:
            return "Choose at least one sampler."
        if not self.steps:
            return "Enter at least one step count."
        if any(s < 1 or s > 1000 for s in self.steps):
            return "Step counts must be 1..1000."
        if any(c < 0 or c > 100 for c in self.cfg_scales):
            return "CFG values must be 0..100."
        if self.cell_count > MAX_CELLS:
            return f"{self.cell_count} cells is too many; at most {MAX_CELLS}."
        return ""

    def to_params(self, current: GenerateParams) -> SamplerGridParams:
        """The grid job for the current recipe: its prompt, seed, size and model as the base;
        the current sampler's row keeps its options (schedule, η, …), other rows use their
        sampler's defaults; calibration, when on, applies to every row."""
        neutral = GenerateParams()
        base = current.model_copy(
            update={name: getattr(neutral, name) for name in ROW_OPTIONS}
            | {"batch_size": 1, "batch_count": 1}
        )
        rows: list[GridSampler | str] = []
        for name in self.samplers:
            opts: dict[str, object] = {}
            if name == current.sampler:
                opts = {
                    k: getattr(current, k)
                    for k in ROW_OPTIONS
                    if getattr(current, k) != getattr(neutral, k)
                }
            elif current.calibrated:
                opts = {"calibrated": True}
            rows.append(GridSampler(sampler=name, **opts))
        return SamplerGridParams(
            base=base,
            samplers=rows,
            steps=list(self.steps),
            cfg_scales=list(self.cfg_scales) if len(self.cfg_scales) > 1 else [],
        )


@dataclass
class GridSlot:
    """One cell on the canvas grid: a preview, then its final image and seconds."""

    row: int
    col: int
    image: CanvasImage
    seconds: float | None = None


class CanvasGrid:
    """The labelled grid of one ``sampler_grid`` job as the canvas draws it."""

    def __init__(self, job_id: str, params: SamplerGridParams):
        self.job_id = job_id
        self.params = params
        self.rows = params.rows()
        multi_cfg = len(params.cfg_scales) > 1
        self.row_labels = [s.label() + (f" · CFG {c:g}" if multi_cfg else "") for s, c in self.rows]
        self.col_labels = [f"{n} steps" for n in params.steps]
        self.slots: dict[tuple[int, int], GridSlot] = {}
        for r, (sampler, cfg) in enumerate(self.rows):
            for c, steps in enumerate(params.steps):
                recipe = params.cell_params(sampler, steps, cfg)
                self.slots[(r, c)] = GridSlot(
                    r, c, CanvasImage(params=recipe, width=recipe.width, height=recipe.height)
                )
        self.sheet_path: Path | None = None

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    @property
    def n_cols(self) -> int:
        return len(self.params.steps)

    @property
    def cell_count(self) -> int:
        return self.n_rows * self.n_cols

    def position(self, index: int) -> tuple[int, int]:
        """Grid position of the job's ``index``-th cell (row-major, as the engine renders)."""
        return divmod(index, max(1, self.n_cols))

    def cell_step(self, index: int, job_step: int) -> tuple[int, int]:
        """(step, steps) within cell ``index`` for the job-wide step the engine reports (it
        counts steps across all cells, row-major): "step 2/3" under a 3-step cell, never the
        job's "step 38"."""
        r, c = self.position(index)
        steps = self.params.steps
        base = r * sum(steps) + sum(steps[:c])
        n = steps[c] if 0 <= c < len(steps) else 0
        return max(0, min(job_step - base, n)), n

    def slot(self, row: int, col: int) -> GridSlot | None:
        return self.slots.get((row, col))

    @property
    def done_count(self) -> int:
        return sum(1 for s in self.slots.values() if s.image.ready)

    @property
    def complete(self) -> bool:
        return self.done_count == self.cell_count

    def progress_text(self) -> str:
        """``'cell 3 of 4'`` while running, ``'4 cells'`` when complete."""
        if self.complete:
            return f"{self.cell_count} cells"
        return f"cell {self.done_count + 1} of {self.cell_count}"

    def apply_cell(self, cell: GridCell, seed: int | None) -> GridSlot | None:
        slot = self.slot(cell.row, cell.col)
        if slot is not None:
            slot.seconds = cell.seconds
            if slot.image.params is not None and seed is not None:
                slot.image.params = slot.image.params.with_seed(seed)
        return slot
