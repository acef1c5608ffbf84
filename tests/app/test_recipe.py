from __future__ import annotations

from pathlib import Path

import pytest

from app.recipe import RecipeError, describe, read_recipe, recipe_from_file


def test_a1111_parameters_chunk(a1111_png: Path):
    p = recipe_from_file(a1111_png)
    assert p.prompt == "a castle on a hill, golden hour"
    assert p.negative_prompt == "blurry, lowres"
    assert (p.steps, p.cfg_scale, p.seed, p.width, p.height) == (30, 6.5, 12345, 512, 768)
    # Older protocol: one combined name; newer: the sampler plus a separate schedule.
    assert (p.sampler, getattr(p, "schedule", "karras")) in {
        ("DPM++ 2M Karras", "karras"),
        ("DPM++ 2M", "karras"),
    }


def test_sfumato_recipe_wins(sfumato_png: Path):
    p = recipe_from_file(sfumato_png)
    assert (p.prompt, p.seed, p.steps, p.sampler, p.width) == (
        "a quiet harbour",
        777,
        8,
        "Euler",
        64,
    )


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
    info.add_text("sfumato", '{"version": 1, "params": {"steps": "many"}}')
    path = tmp_path / "odd.png"
    Image.new("RGB", (4, 4)).save(path, pnginfo=info)
    with pytest.raises(RecipeError, match="cannot use.*damaged"):
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
    cells = [
        {
            "row": 0,
            "col": k,
            "sampler": "Euler",
            "label": "Euler",
            "steps": s,
            "cfg_scale": 7.0,
            "seconds": 0.5,
            "name": f"c{k}.png",
        }
        for k, s in enumerate((2, 3))
    ]
    info = PngInfo()
    info.add_text(
        "sfumato",
        json.dumps({"kind": "sampler_grid", "grid": grid.model_dump(mode="json"), "cells": cells}),
    )
    sheet = tmp_path / "sheet.png"
    Image.new("RGB", (8, 8)).save(sheet, pnginfo=info)
    saved = grid_from_file(sheet)
    assert saved is not None and saved.params == grid
    assert [(c.col, p.name) for c, p in saved.cells] == [(0, "c0.png")]  # c1.png is gone
    broken = PngInfo()
    broken.add_text("sfumato", '{"kind": "sampler_grid", "grid": {"steps": "x"}}')
    Image.new("RGB", (8, 8)).save(sheet, pnginfo=broken)
    assert grid_from_file(sheet) is None


# ------------------------------------------------------------------ files other tools write


def _png(path: Path, **texts: str) -> Path:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    Image.new("RGB", (8, 8), (90, 60, 30)).save(path, pnginfo=info)
    return path


def _exif_image(path: Path, text: str, fmt: str, encoding: str = "utf-16-be") -> Path:
    """An image as A1111 saves a JPEG or WebP: EXIF UserComment = b"UNICODE\\0" + UTF-16."""
    from PIL import Image

    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + text.encode(encoding)
    Image.new("RGB", (16, 16), (30, 90, 160)).save(path, format=fmt, exif=exif.tobytes())
    return path


A1111_FULL = (
    "a lighthouse at dusk\nNegative prompt: fog\nSteps: 24, Sampler: Euler a, "
    "CFG scale: 5, Seed: 42, Size: 640x448, Model: sd15"
)


@pytest.mark.parametrize(
    "fmt,suffix,encoding",
    [("JPEG", ".jpg", "utf-16-be"), ("WEBP", ".webp", "utf-16-be"), ("JPEG", ".jpeg", "utf-16-le")],
)
def test_a1111_jpeg_and_webp_exif(tmp_path: Path, fmt: str, suffix: str, encoding: str):
    r = read_recipe(_exif_image(tmp_path / f"a1111{suffix}", A1111_FULL, fmt, encoding))
    p = r.params
    assert r.source == "A1111"
    assert (p.prompt, p.negative_prompt, p.steps, p.sampler, p.seed) == (
        "a lighthouse at dusk",
        "fog",
        24,
        "Euler a",
        42,
    )
    assert (p.width, p.height, p.cfg_scale) == (640, 448, 5.0)


def test_prompt_only_keeps_last_line_and_negative(tmp_path: Path):
    # No line has three key: value pairs, so none is a settings line (A1111's rule).
    text = "a cat in the rain\nmood: calm, light: soft\nNegative prompt: ugly, text: none"
    r = read_recipe(_png(tmp_path / "p.png", parameters=text))
    assert r.params.prompt == "a cat in the rain\nmood: calm, light: soft"
    assert r.params.negative_prompt == "ugly, text: none"
    assert r.fields == {"prompt", "negative_prompt"}
    # A two-pair last line is prompt, a three-pair one is settings.
    r = read_recipe(_png(tmp_path / "q.png", parameters="x\nSteps: 20, Size: 500x500"))
    assert r.params.prompt == "x\nSteps: 20, Size: 500x500" and r.params.steps == 25


def test_crlf_line_ends(tmp_path: Path):
    r = read_recipe(_png(tmp_path / "crlf.png", parameters=A1111_FULL.replace("\n", "\r\n")))
    assert (r.params.prompt, r.params.negative_prompt, r.params.steps) == (
        "a lighthouse at dusk",
        "fog",
        24,
    )


def test_out_of_range_values_are_adjusted_not_refused(tmp_path: Path):
    text = (
        "a wide street\nSteps: 30, Sampler: DPM++ 2M, CFG scale: 7, "
        "Seed: 18446744073709551557, Size: 1366x768, Hires upscale: 2, Hires steps: 2, "
        "Denoising strength: 0.4, Variation seed: 99, Model hash: 1234"
    )
    r = read_recipe(_png(tmp_path / "wide.png", parameters=text))
    p = r.params
    assert (p.prompt, p.steps, p.sampler) == ("a wide street", 30, "DPM++ 2M")
    assert (p.width, p.height) == (1368, 768)
    assert p.seed == 18446744073709551557 % 2**32
    assert any("1366×768" in n and "1368×768" in n for n in r.notes)
    assert any("18446744073709551557" in n for n in r.notes)
    # A1111's "Variation seed" is its subseed, not a BayesDiff variation; listed as not restored.
    assert p.uncertainty is None
    assert r.not_restored == [
        "Hires upscale",
        "Hires steps",
        "Denoising strength",
        "Variation seed",
    ]
    warn, message = describe(r, "wide.png", known_sampler=lambda name: True)
    assert warn and "Not restored" in message and "Hires steps" in message
    assert "Model hash" not in message


def test_unknown_sampler_is_flagged_at_drop(tmp_path: Path):
    r = read_recipe(_png(tmp_path / "r.png", parameters="x\nSteps: 20, Sampler: Restart, Seed: 1"))
    assert r.params.sampler == "Restart"
    warn, message = describe(r, "r.png", known_sampler=lambda name: name != "Restart")
    assert warn and "'Restart' is not one Sfumato has" in message
    warn, message = describe(r, "r.png", known_sampler=None)  # no engine yet: nothing to say
    assert not warn and message == "Settings restored from r.png (A1111)."


def test_a_file_that_restores_nothing_is_an_error(tmp_path: Path):
    with pytest.raises(RecipeError, match="no generation settings"):
        read_recipe(_png(tmp_path / "empty.png", parameters="  \n "))
    with pytest.raises(RecipeError, match="no KSampler"):
        read_recipe(
            _png(tmp_path / "graph.png", prompt='{"1": {"class_type": "SaveImage", "inputs": {}}}')
        )


def comfy_graph(sampler: str = "dpmpp_2m", scheduler: str = "karras") -> dict:
    """ComfyUI's default workflow as its API graph, with a LoRA and a primitive seed node, and a
    second (hires) KSampler pass."""
    return {
        "4": {
            "class_type": "CheckpointLoaderSimple",
            "inputs": {"ckpt_name": "SD1.5/dreamshaper_8.safetensors"},
        },
        "10": {
            "class_type": "LoraLoader",
            "inputs": {
                "lora_name": "ink.safetensors",
                "strength_model": 0.8,
                "model": ["4", 0],
                "clip": ["4", 1],
            },
        },
        "5": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 768, "height": 512, "batch_size": 2},
        },
        "6": {
            "class_type": "CLIPTextEncode",
            "inputs": {"text": "a fox in snow", "clip": ["10", 1]},
        },
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["10", 1]}},
        "11": {
            "class_type": "ConditioningCombine",
            "inputs": {"conditioning_1": ["6", 0], "conditioning_2": ["6", 0]},
        },
        "12": {"class_type": "PrimitiveNode", "inputs": {"value": 8566257}},
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": ["12", 0],
                "steps": 28,
                "cfg": 6.5,
                "sampler_name": sampler,
                "scheduler": scheduler,
                "denoise": 1.0,
                "model": ["10", 0],
                "positive": ["11", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "13": {
            "class_type": "LatentUpscale",
            "inputs": {"samples": ["3", 0], "width": 1536, "height": 1024},
        },
        "14": {
            "class_type": "KSampler",
            "inputs": {
                "seed": 1,
                "steps": 10,
                "cfg": 6.5,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 0.5,
                "model": ["10", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["13", 0],
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["14", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}},
    }


def test_comfyui_png(tmp_path: Path):
    import json

    path = _png(
        tmp_path / "ComfyUI_00001_.png", prompt=json.dumps(comfy_graph()), workflow='{"nodes": []}'
    )
    r = read_recipe(path)
    p = r.params
    assert r.source == "ComfyUI"
    assert (p.prompt, p.negative_prompt) == ("a fox in snow", "blurry")
    assert (p.seed, p.steps, p.cfg_scale, p.sampler, p.schedule) == (
        8566257,
        28,
        6.5,
        "DPM++ 2M",
        "karras",
    )
    assert (p.width, p.height, p.batch_size, p.model) == (768, 512, 2, "dreamshaper_8")
    assert "LoRA ink" in r.not_restored
    assert any("sampling pass" in k for k in r.not_restored)


@pytest.mark.parametrize(
    "comfy,ours,schedule,spacing",
    [
        ("euler_ancestral", "Euler a", "normal", None),
        ("dpmpp_2m_sde_gpu", "DPM++ 2M SDE", "exponential", None),
        ("uni_pc", "UniPC", "sgm_uniform", "trailing"),
        ("ddim", "DDIM", "ddim_uniform", None),
        ("dpm_fast", "dpm_fast", "simple", None),
    ],
)
def test_comfyui_sampler_and_scheduler_names(comfy, ours, schedule, spacing):
    from app.comfyui_recipe import parse_graph

    r = parse_graph(comfy_graph(comfy, schedule))
    assert r.params.sampler == ours and r.params.timestep_spacing == spacing
    r = parse_graph(comfy_graph(comfy, "kl_optimal"))
    assert r.params.schedule == "default" and any("kl_optimal" in n for n in r.notes)


def test_comfyui_ksampler_advanced_and_64bit_seed():
    from app.comfyui_recipe import parse_graph

    g = comfy_graph()
    del g["14"]
    ks = g["3"]
    ks["class_type"] = "KSamplerAdvanced"
    ks["inputs"]["noise_seed"] = 2**50 + 3
    del ks["inputs"]["seed"]
    r = parse_graph(g)
    assert r.params.seed == 3 and any("32-bit" in n for n in r.notes)


def test_old_sfumato_pngs_open_after_the_recipe_v2_migration(tmp_path: Path):
    """Recipe v1 wrote the uncertainty options flat, and 'Variation step/seed' in the A1111
    text; v2 groups them. Both kinds of old file open with the same values."""
    import json

    from engine.protocol import RECIPE_VERSION, recipe_json

    v1 = {
        "version": 1,
        "kind": "generate",
        "model_name": "tiny",
        "index": 0,
        "params": {
            "prompt": "an old harbour",
            "seed": 9,
            "steps": 12,
            "sampler": "DDIM",
            "width": 64,
            "height": 64,
            "uncertainty": True,
            "uncertainty_samples": 7,
            "uncertainty_skip": 3,
            "uncertainty_decodes": 9,
            "variation_step": 4,
            "variation_seed": 11,
        },
    }
    old_text = (
        "an old harbour\nSteps: 12, Sampler: DDIM, CFG scale: 7, Seed: 9, Size: 64x64, "
        "Uncertainty: 7/3/9, Variation step: 4, Variation seed: 11"
    )
    for texts in ({"sfumato": json.dumps(v1), "parameters": old_text}, {"parameters": old_text}):
        r = read_recipe(_png(tmp_path / "old.png", **texts))
        u = r.params.uncertainty
        assert (r.params.prompt, r.params.seed, r.params.steps) == ("an old harbour", 9, 12)
        assert (u.map, u.samples, u.skip, u.decodes, u.variation_step, u.variation_seed) == (
            True,
            7,
            3,
            9,
            4,
            11,
        )
        assert "Variation seed" not in r.not_restored
    # What is written now is v2 and reads back the same.
    new = json.loads(recipe_json(r.params, seed=9, model_name="tiny", index=0))
    assert new["version"] == RECIPE_VERSION == 2 and new["params"]["uncertainty"]["samples"] == 7
    assert read_recipe(_png(tmp_path / "new.png", sfumato=json.dumps(new))).params == r.params
    newer = {**new, "version": 99}
    with pytest.raises(RecipeError, match="newer Sfumato"):
        read_recipe(_png(tmp_path / "newer.png", sfumato=json.dumps(newer)))


def test_form_values_round_trip():
    from engine.protocol import GenerateParams, form_values

    for p in (
        GenerateParams(),
        GenerateParams(uncertainty=True, uncertainty_skip=2),
        GenerateParams(variation_step=3, variation_seed=5, sampler="DDIM"),
    ):
        assert GenerateParams(**form_values(p)) == p


def test_a_partial_recipe_restores_only_what_it_names(tmp_path: Path):
    from app.state.generation import GenerationSettings

    g = GenerationSettings()
    g.sampler, g.steps = "DDIM", 9
    g.set_option("eta", 0.5)
    r = read_recipe(
        _png(tmp_path / "u.png", parameters="x\nSteps: 20, Seed: 1, Uncertainty: 7/3/9")
    )
    g.apply(r.params, fields=r.fields)
    assert (g.prompt, g.steps, g.seed, g.sampler) == ("x", 20, 1, "DDIM")
    assert g.option("eta") == 0.5  # no sampler in the file: its options stay
    assert (g.option("uncertainty"), g.option("uncertainty_samples")) == (True, 7)
    p = g.to_params()
    assert (p.uncertainty.samples, p.uncertainty.skip, p.uncertainty.decodes) == (7, 3, 9)
