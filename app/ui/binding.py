"""Two-way binding between an observable state property and a widget."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QAbstractButton,
    QComboBox,
    QDoubleSpinBox,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QWidget,
)

from app.state.observable import Observable


def bind(model: Observable, name: str, widget: QWidget) -> None:
    """Keep ``model.<name>`` and ``widget``'s value equal, whichever side changes.

    Supported widgets: QSpinBox, QDoubleSpinBox, QLineEdit, QPlainTextEdit, QComboBox (by its
    current text; editable combos included), checkable buttons.
    """
    get, put, changed = _accessors(widget)

    def to_widget(value: Any) -> None:
        if get() != value:
            put(value)

    def to_model(*_: Any) -> None:
        value = get()
        if getattr(model, name) != value:
            setattr(model, name, value)

    to_widget(getattr(model, name))
    getattr(model, f"{name}_changed").connect(to_widget)
    changed.connect(to_model)


def _accessors(w: QWidget) -> tuple[Any, Any, Any]:
    if isinstance(w, QDoubleSpinBox):
        return w.value, lambda v: w.setValue(float(v)), w.valueChanged
    if isinstance(w, QSpinBox):
        return w.value, lambda v: w.setValue(int(v)), w.valueChanged
    if isinstance(w, QPlainTextEdit):
        return w.toPlainText, w.setPlainText, w.textChanged
    if isinstance(w, QLineEdit):
        return w.text, w.setText, w.textChanged
    if isinstance(w, QComboBox):

        def put(v: str) -> None:
            i = w.findText(v)
            if i >= 0:
                w.setCurrentIndex(i)
            elif w.isEditable():
                w.setEditText(v)
            else:
                # A value the list lacks (e.g. a sampler from another tool's PNG): show it anyway.
                w.addItem(v)
                w.setCurrentIndex(w.count() - 1)

        return w.currentText, put, w.currentTextChanged
    if isinstance(w, QAbstractButton) and w.isCheckable():
        return w.isChecked, w.setChecked, w.toggled
    raise TypeError(f"cannot bind {type(w).__name__}")
