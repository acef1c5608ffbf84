from __future__ import annotations

from pathlib import Path

import pytest

from app.recipe import RecipeError, recipe_from_file


def test_a1111_parameters_chunk(a1111_png: Path):
    p = recipe_from_file(a1111_png)
    assert p.prompt == "a castle on a hill, golden hour"
    assert p.negative_prompt == "blurry, lowres"
    assert (p.steps, p.cfg_scale, p.seed, p.width, p.height) == (30, 6.5, 12345, 512, 768)
    # Older protocol: one combined name; newer: the sampler plus a separate schedule.
    assert (p.sampler, getattr(p, "schedule", "karras")) in {("DPM++ 2M Karras", "karras"),
                                                             ("DPM++ 2M", "karras")}


def test_sfumato_recipe_wins(sfumato_png: Path):
    p = recipe_from_file(sfumato_png)
    assert (p.prompt, p.seed, p.steps, p.sampler, p.width) == ("a quiet harbour", 777, 8,
                                                                "Euler", 64)


def test_png_without_recipe(tmp_path: Path):
    from PIL import Image

    path = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(path)
    with pytest.raises(RecipeError, match="no generation settings"):
        recipe_from_file(path)


def test_wrong_file_types(tmp_path: Path):
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(RecipeError, match="not an image"):
        recipe_from_file(txt)
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"not a png at all")
    with pytest.raises(RecipeError, match="not an image Sfumato can read"):
        recipe_from_file(fake)
    with pytest.raises(RecipeError, match="folder"):
        recipe_from_file(tmp_path)
    with pytest.raises(RecipeError, match="does not exist"):
        recipe_from_file(tmp_path / "missing.png")


def test_unusable_recipe_is_explained(tmp_path: Path):
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", "x\nSteps: 20, Size: 500x500")
    path = tmp_path / "odd.png"
    Image.new("RGB", (4, 4)).save(path, pnginfo=info)
    with pytest.raises(RecipeError, match="cannot use"):
        recipe_from_file(path)


def test_grid_from_file_reads_only_grid_sheets(tmp_path):
    import json

    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from app.recipe import grid_from_file
    from engine.protocol import GenerateParams, SamplerGridParams

    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    assert grid_from_file(plain) is None
    grid = SamplerGridParams(base=GenerateParams(prompt="p"), samplers=["Euler"], steps=[2, 3])
    Image.new("RGB", (8, 8)).save(tmp_path / "c0.png")
    cells = [{"row": 0, "col": k, "sampler": "Euler", "label": "Euler", "steps": s,
              "cfg_scale": 7.0, "seconds": 0.5, "name": f"c{k}.png"} for k, s in enumerate((2, 3))]
    info = PngInfo()
    info.add_text("sfumato", json.dumps({"kind": "sampler_grid", "grid": grid.model_dump(mode="json"),
                                         "cells": cells}))
    sheet = tmp_path / "sheet.png"
    Image.new("RGB", (8, 8)).save(sheet, pnginfo=info)
    saved = grid_from_file(sheet)
    assert saved is not None and saved.params == grid
    assert [(c.col, p.name) for c, p in saved.cells] == [(0, "c0.png")]  # c1.png is gone
    broken = PngInfo()
    broken.add_text("sfumato", '{"kind": "sampler_grid", "grid": {"steps": "x"}}')
    Image.new("RGB", (8, 8)).save(sheet, pnginfo=broken)
    assert grid_from_file(sheet) is None
