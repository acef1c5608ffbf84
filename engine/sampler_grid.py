"""The ``sampler_grid`` job: one prompt and seed across samplers × step counts (× CFG).

Every cell is rendered exactly as its own recipe would be by ``generate`` (same seed, same
sampler setup), saved as its own PNG with that recipe and announced with its grid position and
seconds; then the labelled grid is assembled (Pillow) and saved as one PNG whose JSON chunk
lists every cell. Cells already saved are skipped when a restarted engine resumes the job.
"""

from __future__ import annotations

import json
import time

from engine.outputs import output_path, write_png
from engine.prompts.job import PromptSession
from engine.protocol import (
    PNG_PARAMETERS_KEY,
    PNG_RECIPE_KEY,
    GridCell,
    Job,
    ResultImage,
    SamplerGridJob,
    kind_of,
)
from engine.render import Batch, render
from engine.sampling import prepare


def run_sampler_grid(job: Job, ctx, fits=None) -> None:
    grid = job.spec.params
    loaded = ctx.load_model(grid.base.model)
    texts = [grid.base.prompt, grid.base.negative_prompt]
    with PromptSession(loaded, ctx.model_folders, texts) as prompts:
        _render_cells(job, ctx, fits, loaded, prompts)
    _save_grid(job, ctx, grid, loaded.info.id)


def _render_cells(job: Job, ctx, fits, loaded, prompts) -> None:
    """The cells not saved yet, one pipeline call each (engine/render.py), each with its own
    sampler setup and conditioning, timed from its setup to its image."""
    spec: SamplerGridJob = job.spec
    grid = spec.params
    rows = grid.rows()
    cells = [(r, c, s, cfg, n) for r, (s, cfg) in enumerate(rows) for c, n in enumerate(grid.steps)]
    done = {res.index for res in job.results if res.role == "image"}
    total = sum(n for *_, n in cells)
    ctx.begin(total, done=sum(n for k, (*_, n) in enumerate(cells) if k in done))

    def batches():
        offset = ctx.job.step
        for k, (r, c, sampler, cfg, steps) in enumerate(cells):
            if k in done:
                continue
            p = grid.cell_params(sampler, steps, cfg)
            t0 = time.perf_counter()
            setup = prepare(loaded, p, fits)
            conditioning = prompts.encode(p.prompt, p.negative_prompt, cfg, steps, p.clip_skip)
            recipe = p.model_copy(update={"model": loaded.info.id, **prompts.recipe_update()})
            yield Batch(
                p,
                recipe,
                indices=[k],
                seeds=[grid.base.seed],
                setup=setup,
                conditioning=conditioning,
                progress_base=offset,
                preview_indices=[k],
                tag=(r, c, sampler, cfg, t0),
            )
            offset += steps

    def cell(batch: Batch, _i, _image, _path) -> dict:
        r, c, sampler, cfg, t0 = batch.tag
        seconds = time.perf_counter() - t0
        return {
            "cell": GridCell(
                row=r,
                col=c,
                sampler=sampler.sampler,
                label=_row_label(sampler, cfg, grid),
                steps=batch.params.steps,
                cfg_scale=cfg,
                seconds=round(seconds, 3),
            )
        }

    render(job, ctx, loaded, batches(), result_fields=cell)


def _row_label(sampler, cfg: float, grid) -> str:
    label = sampler.label()
    return f"{label} · CFG {cfg:g}" if len(grid.cfg_scales) > 1 else label


def _save_grid(job: Job, ctx, grid, model_id: str) -> None:
    from PIL import Image

    cells = [r for r in job.results if r.role == "image" and r.cell is not None]
    images = {(r.cell.row, r.cell.col): Image.open(r.path).convert("RGB") for r in cells}
    row_labels = {r.cell.row: r.cell.label for r in cells}
    col_labels = [f"{n} steps" for n in grid.steps]
    seconds = {(r.cell.row, r.cell.col): r.cell.seconds for r in cells}
    sheet = assemble_grid(images, row_labels, col_labels, seconds)
    first = min(cells, key=lambda r: r.index)
    recipe = grid.cell_params(
        grid.samplers[0], grid.steps[0], (grid.cfg_scales or [grid.base.cfg_scale])[0]
    )
    recipe = recipe.model_copy(update={"model": model_id})
    texts = {
        PNG_PARAMETERS_KEY: recipe.to_a1111(model_name=model_id, seed=first.seed),
        PNG_RECIPE_KEY: json.dumps(
            {
                "version": 1,
                "kind": kind_of(SamplerGridJob),
                "model_name": model_id,
                "index": len(cells),
                "params": recipe.with_seed(first.seed).model_dump(mode="json"),
                "grid": grid.model_dump(mode="json"),
                "cells": [r.cell.model_dump(mode="json") | {"name": r.name} for r in cells],
            }
        ),
    }
    path = output_path(ctx.output_dir, job.id, 0, job.created_at).with_name(
        f"{job.id[:8]}-grid.png"
    )
    write_png(sheet, path, texts)
    ctx.add_result(
        ResultImage(
            name=path.name,
            path=str(path),
            index=len(cells),
            seed=first.seed,
            width=sheet.width,
            height=sheet.height,
            role="grid",
        )
    )


def assemble_grid(
    images: dict, row_labels: dict[int, str], col_labels: list[str], seconds: dict
) -> object:
    """A labelled grid: step counts across the top, samplers down the left, seconds under
    each cell. Small cells (the embedded model's 64 px) are scaled up, pixel-exact."""
    from PIL import Image, ImageDraw, ImageFont

    w, h = next(iter(images.values())).size
    scale = max(1, 160 // max(1, min(w, h)))
    cw, ch = w * scale, h * scale
    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    n_rows = max(row_labels) + 1 if row_labels else 0
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = 12 + max((probe.textlength(t, font=font) for t in row_labels.values()), default=0)
    top, foot, pad = 28, 20, 6
    sheet = Image.new(
        "RGB",
        (int(left) + len(col_labels) * (cw + pad) + pad, top + n_rows * (ch + foot + pad)),
        "white",
    )
    draw = ImageDraw.Draw(sheet)
    for c, label in enumerate(col_labels):
        draw.text((left + c * (cw + pad) + pad, 6), label, fill="black", font=font)
    for r in range(n_rows):
        y = top + r * (ch + foot + pad)
        draw.text((6, y + ch // 2 - 8), row_labels.get(r, ""), fill="black", font=font)
        for c in range(len(col_labels)):
            x = int(left) + c * (cw + pad) + pad
            if (r, c) in images:
                sheet.paste(images[(r, c)].resize((cw, ch), Image.NEAREST), (x, y))
                draw.text((x, y + ch + 2), f"{seconds[(r, c)]:.2f} s", fill="#444", font=font)
    return sheet
