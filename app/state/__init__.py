"""Observable app state: no widgets here, so all of it is testable without a window."""

from .canvas import CanvasImage, CanvasState
from .engine import Connection, EngineInfo
from .generation import GenerationSettings
from .history import HistoryState
from .jobs import JobItem, JobsState
from .settings import Settings

__all__ = [
    "CanvasImage",
    "CanvasState",
    "Connection",
    "EngineInfo",
    "GenerationSettings",
    "HistoryState",
    "JobItem",
    "JobsState",
    "Settings",
]
