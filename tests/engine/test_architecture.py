"""engine/architecture.py: the Architecture enum agrees with what the registry detects, its facts
are what the engine serves and refuses by, and the app's sizes come from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.state import model_size
from engine.architecture import FLOW_ARCHITECTURES, Architecture, Family, Method
from engine.errors import EngineError
from engine.fit_jobs import check_fits
from engine.models import registry
from engine.protocol import GenerateParams, ModelInfo, UncertaintyOptions
from engine.samplers import CATALOGUE, check_family
from tests.engine.test_single_file import real_shapes, write_header_only


def _folder(root: Path, name: str, pipeline: str, cross_attention_dim: int = 768) -> Path:
    """A diffusers folder as the registry reads it to list it (configs only, no weights)."""
    path = root / name
    (path / "unet").mkdir(parents=True)
    (path / "model_index.json").write_text(json.dumps({"_class_name": pipeline}))
    (path / "unet" / "config.json").write_text(
        json.dumps({"cross_attention_dim": cross_attention_dim})
    )
    return path


FOLDERS = {  # pipeline class, UNet context width → the architecture the registry must see
    "sd1": ("StableDiffusionPipeline", 768),
    "sd2": ("StableDiffusionPipeline", 1024),
    "sdxl": ("StableDiffusionXLPipeline", 2048),
    "sd3": ("StableDiffusion3Pipeline", 0),
    "flux": ("FluxPipeline", 0),
}


@pytest.mark.parametrize("arch", list(FOLDERS))
def test_every_folder_the_registry_detects_is_a_member_with_its_facts(arch, tmp_path):
    info = registry.describe(_folder(tmp_path, arch, *FOLDERS[arch]), embedded=False)
    assert info is not None and info.architecture == arch
    member = Architecture(info.architecture)
    assert info.family == member.family.value
    assert info.methods == [m.value for m in Method if member.supports(m)]
    assert registry.model_family(arch) == member.family.value


@pytest.mark.parametrize("arch", ["sd1", "sd2", "sdxl"])
def test_single_files_get_the_members_native_size(arch, tmp_path):
    path = write_header_only(tmp_path / f"{arch}.safetensors", real_shapes(arch))
    info = registry.describe(path, embedded=False)
    assert info is not None and info.architecture == arch
    assert (
        info.native_size
        == Architecture(arch).native_size
        == {"sd1": 512, "sd2": 768, "sdxl": 1024}[arch]
    )


def test_every_detectable_string_is_a_member_and_no_member_is_undetectable():
    detectable = {*FOLDERS, *registry._FLOW_PIPELINES.values(), "unknown"}
    assert detectable == {a.value for a in Architecture}
    assert set(registry.FLOW_ARCHITECTURES) == set(FLOW_ARCHITECTURES) == {"sd3", "flux"}
    assert Architecture.parse("something new") is Architecture.UNKNOWN
    assert Architecture.parse(None) is Architecture.UNKNOWN


def test_the_built_in_model_is_sd1_with_its_own_size():
    info = registry.describe(registry.EMBEDDED_MODELS / registry.DEFAULT_MODEL_ID, embedded=True)
    assert info is not None and info.architecture == "sd1" and info.native_size == 64
    assert set(info.methods or ()) == {m.value for m in Method}  # every method runs on it


def test_model_info_facts_are_filled_and_old_engines_still_parse():
    old = {"id": "x", "name": "X", "format": "single_file", "path": "/x", "architecture": "sd3"}
    info = ModelInfo.model_validate_json(json.dumps(old))  # an engine that predates the fields
    assert info.family == "flow" and info.methods == []
    again = ModelInfo.model_validate_json(info.model_dump_json())
    assert again == info
    given = ModelInfo(id="x", name="X", format="diffusers", path="/x", methods=["fits"])
    assert given.methods == ["fits"] and given.family == "diffusion"


@pytest.mark.parametrize("arch", [a.value for a in Architecture])
def test_the_apps_native_size_comes_from_the_enum(arch):
    info = ModelInfo(id="m", name="M", format="single_file", path="/m", architecture=arch)
    assert model_size.native_size(info) == Architecture(arch).native_size
    reported = info.model_copy(update={"native_size": 320})
    assert model_size.native_size(reported) == 320  # the model's own size wins
    assert not hasattr(model_size, "ARCH_SIZES")  # no second table


def test_refusals_follow_the_methods():
    for arch in ("sd1", "sd2"):
        check_fits(ModelInfo(id="m", name="M", format="diffusers", path="/m", architecture=arch))
    for arch, note in (("sdxl", "SDXL's second encoder"), ("sd3", "velocity")):
        with pytest.raises(EngineError, match=note):
            check_fits(
                ModelInfo(id="m", name="M", format="diffusers", path="/m", architecture=arch)
            )
    p = GenerateParams(sampler="DDIM", calibrated=True, uncertainty=UncertaintyOptions())
    assert check_family(p, "sd1") == [] and check_family(p, "sd2") == []
    problems = dict(check_family(p, "sdxl"))
    assert set(problems) == {"uncertainty", "calibrated"}
    assert problems["calibrated"].startswith("Calibration is not available for sdxl models")
    analytic = dict(check_family(GenerateParams(sampler="Analytic-DDIM"), "sdxl"))
    assert "Analytic-DPM" in analytic["sampler"]


def test_the_catalogue_uses_the_families():
    families = {s.model_family for s in CATALOGUE.values()}
    assert families == set(Family)
    for spec in CATALOGUE.values():
        info = spec.info()
        assert info.model_family == spec.model_family.value
        assert info.uncertainty == (spec.name in ("DDIM", "DPM2"))


def test_lora_widths_and_default_predictions_come_from_the_facts():
    from engine.models.single_file import classify_keys

    for arch, width in (("sd1", 768), ("sd2", 1024), ("sdxl", 2048)):
        info = classify_keys(real_shapes(arch), {}, "model.safetensors")
        assert info.context_dim == Architecture(arch).facts.context_dim == width
        assert info.default_prediction_type() == Architecture(arch).facts.default_prediction
    assert Architecture.SD2.facts.default_prediction == "v_prediction"


def test_a_video_edit_on_sdxl_is_refused_at_submit_with_the_reason(tmp_path):
    from starlette.testclient import TestClient

    from tests.support.inprocess import AUTH, engine_app

    models = tmp_path / "models"
    models.mkdir()
    write_header_only(models / "my-xl.safetensors", real_shapes("sdxl"))
    app, _engine = engine_app(tmp_path / "data", models)
    client = TestClient(app, raise_server_exceptions=False, headers=AUTH)
    job = {
        "kind": "video_edit",
        "params": {"model": "my-xl", "source": "nope", "target_prompt": "a red car"},
    }
    r = client.post("/v1/jobs", json={"job": job})
    assert r.status_code == 422, r.text
    body = r.text
    assert "Video editing is not available for sdxl models" in body and "job.params.model" in body
