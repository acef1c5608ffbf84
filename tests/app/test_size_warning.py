"""Issue 14 item 9: warn before waste — a size far from the model's native size is flagged in
the Prompt panel, when a recipe restores it, and (once) when such a job is queued."""

from __future__ import annotations

from app.state.model_size import native_size, size_warning
from engine.protocol import EngineState, Health, ModelInfo

from .test_window import window  # noqa: F401

TINY = ModelInfo(
    id="sfumato-tiny",
    name="Sfumato tiny",
    format="diffusers",
    path="/m",
    embedded=True,
    native_size=64,
)
SD15 = ModelInfo(id="sd15", name="SD 1.5", format="single_file", path="/x.safetensors")


def test_native_sizes_and_the_far_rule():
    assert native_size(TINY) == 64 and native_size(SD15) == 512  # ARCH_SIZES for sd1
    assert native_size(None) == 0
    assert size_warning(64, 64, TINY) == "" and size_warning(128, 96, TINY) == ""
    far = size_warning(512, 768, TINY)
    assert "512×768" in far and "native 64×64" in far and "Try 64×64" in far
    assert "96× the time" in far  # 512·768 / 64² pixels
    assert "far below" in size_warning(128, 128, SD15)
    assert size_warning(512, 768, SD15) == "" and size_warning(1088, 512, SD15) != ""
    assert size_warning(4096, 4096, None) == ""  # unknown model: no guess


def _load(window, model: ModelInfo) -> None:  # noqa: F811
    engine = window.controller.engine
    engine.models = [model.model_copy(update={"loaded": True})]
    engine.update_health(
        Health(version="t", state=EngineState.ready, device="cpu", dtype="float32", model=model.id)
    )
    engine.models_listed = True


def test_the_prompt_panel_warns_under_size(window):  # noqa: F811
    g = window.controller.generation
    label = window.prompt_panel.size_warning_label
    g.set_size(512, 768)
    assert label.isHidden()  # the engine has not listed its models: the size is still pending
    _load(window, TINY)
    g.set_size(64, 64)
    assert label.isHidden()
    g.set_size(512, 768)
    assert not label.isHidden() and "far above Sfumato tiny's native 64×64" in label.text()
    g.set_size(64, 64)
    assert label.isHidden()
    g.set_size(512, 512)
    _load(window, SD15)  # the same size on a 512 model is fine
    assert label.isHidden()


async def test_a_restored_recipe_and_generate_warn(window, a1111_png):  # noqa: F811
    notices: list[tuple[str, str]] = []
    c = window.controller
    c.notice.connect(lambda level, text: notices.append((level, text)))
    _load(window, TINY)
    assert c.generate_jobs.restore_from_file(a1111_png)  # A1111 text: Size: 512x768
    level, text = notices[-1]
    assert level == "warning" and "512×768 is far above" in text
    assert "Settings restored from a1111.png" in text
    notices.clear()
    c.generate_jobs.generate()
    c.generate_jobs.generate()
    warned = [t for lv, t in notices if lv == "warning" and "far above" in t]
    assert len(warned) == 1 and warned[0].startswith("Queued anyway.")  # once, not a nag
    assert len(c.generate_jobs.pending) == 2  # never refused
