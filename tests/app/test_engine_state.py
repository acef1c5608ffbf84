from __future__ import annotations

from app.state.engine import Connection, EngineInfo, format_bytes
from engine.protocol import EngineState, Health, ModelInfo


def health(state: EngineState = EngineState.ready, model: str | None = "tiny") -> Health:
    return Health(
        version="0.1",
        state=state,
        device="cuda:0",
        dtype="float16",
        model=model,
        memory_used=2_500_000_000,
        memory_total=24_000_000_000,
    )


def test_health_drives_connection_and_loaded_model(qapp):
    e = EngineInfo()
    e.models = [
        ModelInfo(id="tiny", name="Tiny", format="diffusers", path="/m/tiny", embedded=True),
        ModelInfo(id="sd15", name="SD 1.5", format="single_file", path="/m/sd15.st"),
    ]
    seen: list[Connection] = []
    e.connection_changed.connect(seen.append)
    e.update_health(health(EngineState.busy))
    assert e.connection is Connection.busy
    e.update_health(health(EngineState.ready))
    assert seen == [Connection.busy, Connection.ready]
    assert e.loaded_model is not None and e.loaded_model.id == "tiny"
    assert e.status_text() == "Engine ready"
    assert e.device_text() == "cuda:0 · float16 · 2.5 GB / 24.0 GB"
    e.update_health(health(EngineState.loading, model="sd15"))
    assert e.connection is Connection.loading
    assert e.loaded_model is not None and e.loaded_model.id == "sd15"


def test_status_texts(qapp):
    e = EngineInfo()
    e.connection = Connection.restarting
    assert e.status_text() == "Engine crashed → restarting"
    e.connection = Connection.ready
    e.remote = True
    assert e.status_text() == "Engine ready (remote)"
    assert not Connection.disconnected.usable and Connection.busy.usable


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KB"
    assert format_bytes(3_200_000_000) == "3.2 GB"


def test_unload_clears_the_loaded_mark(qapp):
    e = EngineInfo()
    e.models = [ModelInfo(id="tiny", name="Tiny", format="diffusers", path="/m", loaded=True)]
    e.update_health(health(model=None))
    assert e.loaded_model is None and not e.models[0].loaded


def test_before_any_load_the_engine_default_is_the_active_model(qapp):
    e = EngineInfo()
    e.models = [
        ModelInfo(
            id="sfumato-tiny",
            name="Tiny",
            format="diffusers",
            path="/m/t",
            embedded=True,
            native_size=64,
        )
    ]
    h = health(model=None).model_copy(update={"default_model": "sfumato-tiny"})
    e.update_health(h)
    assert e.loaded_model is None
    assert e.active_model is not None and e.active_model.native_size == 64


def test_device_text_names_the_fast_path(qapp):
    e = EngineInfo()
    e.update_health(health().model_copy(update={"fast_path": "warming up"}))
    assert e.device_text().endswith(" · fast path warming up")
    e.update_health(health().model_copy(update={"fast_path": "on"}))
    assert e.device_text().endswith(" · fast path on")


def test_device_tip_says_why_a_lora_job_ran_eager(qapp):
    e = EngineInfo()
    e.update_health(health())
    assert e.device_tip() == ""
    detail = "inductor/reduce-overhead · last LoRA job ran eager: 'big' has rank 128"
    e.update_health(health().model_copy(update={"fast_path": "on", "fast_path_detail": detail}))
    assert e.device_tip() == f"fast path on: {detail}"


def test_device_text_names_the_offload(qapp):
    e = EngineInfo()
    e.update_health(health().model_copy(update={"offload": "t5-cpu"}))
    assert e.device_text().endswith(" · T5 on the CPU")
    e.update_health(health())
    assert "offload" not in e.device_text() and "T5" not in e.device_text()
