"""The model picker: what a model that cannot load, or loads with a note, says."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.state.engine import EngineInfo
from app.ui.model_bar import ModelBar
from engine.protocol import ModelInfo


def test_a_flow_single_file_shows_its_note_and_its_problem(qapp):
    engine = EngineInfo()
    bar = ModelBar(engine)
    engine.models = [
        ModelInfo(
            id="sd3",
            name="SD3",
            format="single_file",
            path="/m/sd3.safetensors",
            architecture="sd3",
            note="runs without T5 (…) t5_tokenizer.json",
        ),
        ModelInfo(
            id="flux",
            name="Flux",
            format="single_file",
            path="/m/flux.safetensors",
            architecture="flux",
            problem="put ae.safetensors into the same folder.",
        ),
    ]
    tips = [bar.combo.itemData(i, Qt.ItemDataRole.ToolTipRole) for i in range(2)]
    assert "ⓘ runs without T5" in tips[0] and "⚠" not in tips[0]
    assert "⚠ put ae.safetensors" in tips[1]
    assert not bar.combo.model().item(1).isEnabled()  # listed, not pickable
    assert "cannot load" in bar.combo.itemText(1)
