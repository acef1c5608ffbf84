from __future__ import annotations

from app.state.generation import SIZE_PRESETS, GenerationSettings, field_of, snap8
from engine.protocol import GenerateParams


def test_to_params_round_trip(qapp):
    g = GenerationSettings()
    g.prompt, g.width, g.height, g.steps, g.seed = "cat", 64, 64, 4, 42
    p = g.to_params()
    assert (p.prompt, p.width, p.height, p.steps, p.seed) == ("cat", 64, 64, 4, 42)
    assert p.model is None


def test_local_validation_marks_the_field(qapp):
    g = GenerationSettings()
    seen: list[dict] = []
    g.errors_changed.connect(seen.append)
    g.width = 65
    assert g.validated_params() is None
    assert "multiple of 8" in g.error("width")
    assert seen[-1] == g.errors
    g.width = 64  # editing the field clears its message
    assert g.error("width") == ""
    assert g.validated_params() is not None


def test_api_field_paths_map_to_form_fields():
    assert field_of("job.params.width") == "width"
    assert field_of("body.job.params.cfg_scale") == "cfg_scale"
    assert field_of("job.params.sampler") == "sampler"
    assert field_of("job.priority") is None
    assert field_of(None) is None


def test_apply_recipe_keeps_the_loaded_model(qapp):
    g = GenerationSettings()
    g.set_error("steps", "bad")
    params = GenerateParams(
        prompt="p",
        negative_prompt="n",
        width=256,
        height=128,
        steps=9,
        cfg_scale=3.5,
        sampler="DDIM",
        seed=5,
        batch_size=2,
        batch_count=3,
        model="some-a1111-checkpoint",
    )
    g.apply(params)
    assert g.to_params() == params.model_copy(update={"model": None})
    assert g.errors == {}


def test_size_helpers(qapp):
    g = GenerationSettings()
    g.set_size(100, 30)
    assert (g.width, g.height) == (104, 32)
    g.swap_size()
    assert (g.width, g.height) == (32, 104)
    assert snap8(3) == 8 and snap8(99999) == 4096
    sizes = {(w, h) for _l, w, h in SIZE_PRESETS}
    assert {(64, 64), (256, 256), (512, 512), (768, 768), (1024, 1024)} <= sizes
    assert any(w != h for w, h in sizes)
    assert all(w % 8 == 0 and h % 8 == 0 for w, h in sizes)


def test_seed_helpers(qapp):
    g = GenerationSettings()
    g.reuse_seed(123)
    assert g.seed == 123
    g.randomize_seed()
    assert g.seed == -1


def test_options_pass_through(qapp):
    g = GenerationSettings()
    fields = GenerateParams.model_fields
    seen: list[dict] = []
    g.options_changed.connect(seen.append)
    g.set_option("batch_count", 3)  # any GenerateParams field the form does not own
    assert g.to_params().batch_count == 1  # form fields win over options
    g.set_option("batch_count", None)
    if "schedule" in fields:  # newer protocol: sampler options
        g.set_option("schedule", "karras")
        assert g.to_params().schedule == "karras"
        g.apply(GenerateParams(sampler="Euler", schedule="exponential"))
        assert g.option("schedule") == "exponential"
        g.apply(GenerateParams())
        assert g.options == {}
    assert seen
