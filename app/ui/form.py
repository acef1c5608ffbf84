"""Small builders every dock panel uses, so the panels look alike: section titles, field
labels, and the scrolling body a panel's form lives in."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QLayout, QScrollArea, QVBoxLayout, QWidget


def section_title(text: str) -> QLabel:
    """An upper-case section heading (styled by ``#SectionTitle`` in the theme)."""
    label = QLabel(text.upper())
    label.setObjectName("SectionTitle")
    return label


def field_label(text: str, buddy: QWidget | None = None) -> QLabel:
    """The label in front of a field (``#FieldLabel``); ``buddy`` gets its mnemonic focus."""
    label = QLabel(text)
    label.setObjectName("FieldLabel")
    if buddy is not None:
        label.setBuddy(buddy)
    return label


def scrolling_body(layout: QLayout) -> QScrollArea:
    """``layout`` in a padded panel body that scrolls vertically when the dock is short."""
    inner = QWidget()
    inner.setObjectName("DockBody")
    lay = QVBoxLayout(inner)
    lay.setContentsMargins(12, 10, 12, 10)
    lay.addLayout(layout)
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setWidget(inner)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return scroll
