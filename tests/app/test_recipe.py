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
