from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QLineEdit, QPlainTextEdit, QSpinBox

from app.state.observable import Observable, Property
from app.ui.binding import bind


class Thing(Observable):
    name = Property("a")
    count = Property(1, coerce=int)
    tags = Property[list[str]]([])


def test_property_emits_only_on_change(qapp):
    t = Thing()
    seen: list[object] = []
    t.name_changed.connect(seen.append)
    t.name = "b"
    t.name = "b"
    t.name = "c"
    assert seen == ["b", "c"]
    assert t.name == "c"


def test_coerce_and_mutable_defaults_are_per_instance(qapp):
    a, b = Thing(), Thing()
    a.count = 3.0
    assert a.count == 3 and isinstance(a.count, int)
    a.tags.append("x")
    assert b.tags == []
    assert Thing.properties() == ["name", "count", "tags"]


def test_bind_two_ways(qapp):
    t = Thing()
    edit, spin = QLineEdit(), QSpinBox()
    bind(t, "name", edit)
    bind(t, "count", spin)
    assert edit.text() == "a"
    edit.setText("typed")
    assert t.name == "typed"
    t.name = "from model"
    assert edit.text() == "from model"
    spin.setValue(7)
    assert t.count == 7
    t.count = 9
    assert spin.value() == 9


def test_bind_text_and_combo(qapp):
    t = Thing()
    text, combo = QPlainTextEdit(), QComboBox()
    combo.addItems(["a", "b"])
    bind(t, "name", combo)
    t.name = "b"
    assert combo.currentText() == "b"
    t.name = "unknown"  # a value the list lacks is added, not dropped
    assert combo.currentText() == "unknown"
    bind(t, "name", text)
    text.setPlainText("multi\nline")
    assert t.name == "multi\nline"
