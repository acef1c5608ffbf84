"""Observable properties: plain attributes that announce their changes with a Qt signal.

``name = Property(default)`` on an :class:`Observable` subclass creates a ``name_changed``
signal, emitted with the new value whenever an assignment changes the value. Widgets bind to
these (see :mod:`app.ui.binding`); logic reads and writes them like ordinary attributes, so state
classes are testable without a window.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QObject, Signal

T = TypeVar("T")


class Property(Generic[T]):
    """A value on an :class:`Observable` that emits ``<name>_changed(value)`` when it changes."""

    def __init__(self, default: T, *, doc: str = "", coerce: Callable[[Any], T] | None = None):
        self.default = default
        self.coerce = coerce
        self.__doc__ = doc
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self._attr = f"_prop_{name}"

    def __get__(self, obj: Any, owner: type | None = None) -> T:
        if obj is None:
            return self  # type: ignore[return-value]
        try:
            return obj.__dict__[self._attr]
        except KeyError:
            # Mutable defaults (lists, dicts) are copied so instances never share them.
            value = copy.copy(self.default)
            obj.__dict__[self._attr] = value
            return value

    def __set__(self, obj: Any, value: T) -> None:
        if self.coerce is not None:
            value = self.coerce(value)
        old = self.__get__(obj)
        if old is value or (type(old) is type(value) and old == value):
            return
        obj.__dict__[self._attr] = value
        getattr(obj, f"{self.name}_changed").emit(value)


class _ObservableMeta(type(QObject)):  # type: ignore[misc]
    """Adds a ``<name>_changed`` signal for each :class:`Property` before Qt sees the class."""

    def __new__(mcs, name: str, bases: tuple[type, ...], ns: dict[str, Any], **kw: Any):
        for key, value in list(ns.items()):
            if isinstance(value, Property):
                ns[f"{key}_changed"] = Signal(object)
        return super().__new__(mcs, name, bases, ns, **kw)


class Observable(QObject, metaclass=_ObservableMeta):
    """Base class of state objects: a QObject whose :class:`Property` attributes are observable."""

    @classmethod
    def properties(cls) -> list[str]:
        """Names of the observable properties, base classes first."""
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            for key, value in vars(klass).items():
                if isinstance(value, Property) and key not in names:
                    names.append(key)
        return names
