"""The composition root: builds the state objects, the engine session, the library and one
controller per capability, and wires them together.

Widgets talk to their feature's controller (``generate_jobs``, ``compare_jobs``, ``fit_jobs``,
``results``, ``queue``, ``video_jobs``, ``robustness_jobs``, ``prompt_tools_jobs``) and bind to
the state objects; each controller claims its own job kinds' events from the
:class:`~app.session.EngineSession`. No widget ever touches the client. See
docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject

from engine.protocol import Event, GenerateParams

from .client import EngineClient
from .controllers.compare import CompareController
from .controllers.fits import FitsController
from .controllers.generate import GenerateController
from .controllers.prompt_tools import PromptToolsController
from .controllers.queue import QueueController
from .controllers.results import ResultsController
from .controllers.robustness import RobustnessController
from .controllers.video import VideoController
from .engine_process import LocalEngine
from .library import HistoryIndex, Library
from .paths import AppPaths
from .session import EngineSession, LaunchOptions
from .state import CanvasState, EngineInfo, GenerationSettings, HistoryState, JobsState, Settings
from .state.prompt_tools import PromptTools
from .state.robustness import RobustnessState
from .state.sampler import FitsState
from .state.uncertainty import UncertaintyView
from .state.video import VideoState


class AppController(QObject):
    """Owns the state objects, the engine session and the feature controllers."""

    def __init__(
        self,
        paths: AppPaths,
        settings: Settings,
        options: LaunchOptions | None = None,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.paths, self.settings = paths, settings
        self.options = options or LaunchOptions()
        paths.ensure()
        # ---- state: observable, no widgets (app/state/)
        self.generation = GenerationSettings()
        self.jobs = JobsState()
        self.engine = EngineInfo()
        self.canvas = CanvasState()
        index = HistoryIndex(paths.history_db)  # the History's SQLite (app/library.py)
        self.history = HistoryState(index)
        self.fits = FitsState()
        #: How uncertainty maps are drawn (the Uncertainty panel edits it, the canvas reads it).
        self.uncertainty_view = UncertaintyView()
        self.video = VideoState()
        self.robustness = RobustnessState()
        #: The prompt boxes' token counts and installed LoRAs.
        self.prompt_tools = PromptTools()
        # ---- the engine connection and the result files
        self.session = EngineSession(paths, settings, self.options, self.engine, self.jobs, self)
        #: (level, message): for the status bar and the canvas toast (the session's signal).
        self.notice = self.session.notice
        self.library = Library(self.session, index, self.history, self.jobs)
        self.session.on_sync(self.library.on_sync)
        # ---- one controller per capability (app/controllers/), each claiming its job kinds
        s = self.session
        self.results = ResultsController(s, self.library, self.canvas, self.history, self)
        self.generate_jobs = GenerateController(
            s, self.library, self.results, self.generation, self.canvas, self.jobs, self
        )
        self.compare_jobs = CompareController(
            s, self.library, self.generation, self.canvas, self.jobs, self
        )
        self.fit_jobs = FitsController(s, self.generation, self.fits, self.jobs, self)
        self.queue = QueueController(s, self.jobs, self)
        self.video_jobs = VideoController(self.video, s, self.library, self)
        self.robustness_jobs = RobustnessController(self.robustness, self.generation, s, self)
        self.prompt_tools_jobs = PromptToolsController(self.prompt_tools, self.generation, s, self)
        self._restore_last_params()

    # ----------------------------------------------------------------- the session's face
    @property
    def client(self) -> EngineClient | None:
        return self.session.client

    @property
    def local(self) -> LocalEngine | None:
        return self.session.local

    @property
    def output_dir(self) -> Path:
        return self.session.output_dir

    @property
    def is_remote(self) -> bool:
        return self.session.is_remote

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the loop (see :meth:`EngineSession.spawn`)."""
        return self.session.spawn(coro)

    def handle_event(self, event: Event) -> None:
        """Fold one engine event into the state (public so tests can feed events)."""
        self.session.handle_event(event)

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Load the history, then start or reach the engine. Returns once that is under way."""
        self.history.load()
        self.session.spawn(self.library.scan_outputs())
        await self.session.start_engine()

    async def reconnect(self) -> None:
        """Apply changed engine settings: switch local ↔ remote, or restart the local engine."""
        await self.session.reconnect()

    async def shutdown(self) -> None:
        """Stop everything: the event stream, the client, and the local engine process."""
        self.save_last_params()
        self.settings.sync()
        await self.session.close()
        self.library.index.close()

    # ----------------------------------------------------------------- persistence
    def save_last_params(self) -> None:
        try:
            self.settings.last_params = self.generation.to_params().model_dump_json()
        except ValueError:
            pass

    def _restore_last_params(self) -> None:
        if self.settings.last_params:
            try:
                self.generation.apply(GenerateParams.model_validate_json(self.settings.last_params))
            except ValueError:
                pass
