"""The prompt boxes' engine work: token counts per chunk and the installed LoRAs.

Typing is debounced (a count is asked for after a pause, and only the newest answer is kept);
the LoRA list is fetched when the engine becomes usable, when its models change and when the
LoRA menu opens. Failures leave the counter empty: counting is a hint, never an error.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QTimer

from ..client import EngineError
from ..session import EngineSession
from ..state.generation import GenerationSettings
from ..state.prompt_tools import PromptTools

log = logging.getLogger(__name__)
DEBOUNCE_MS = 250


class PromptToolsController(QObject):
    """Owned by :class:`app.controller.AppController` (``controller.prompt_tools_jobs``)."""

    def __init__(
        self,
        state: PromptTools,
        generation: GenerationSettings,
        session: EngineSession,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.state, self.generation, self.session = state, generation, session
        engine = self.engine = session.engine
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._count_soon)
        self._asked = 0
        generation.prompt_changed.connect(lambda _v: self._timer.start())
        generation.negative_prompt_changed.connect(lambda _v: self._timer.start())
        generation.steps_changed.connect(lambda _v: self._timer.start())
        engine.connection_changed.connect(self._on_connection)
        engine.models_changed.connect(lambda _v: self.refresh_loras())

    def _on_connection(self, connection) -> None:
        if connection.usable:
            self.refresh_loras()
            self._timer.start()

    def _count_soon(self) -> None:
        if self.session.client is not None and self.engine.connection.usable:
            self.session.spawn(self.count_now())

    def refresh_loras(self) -> None:
        if self.session.client is not None and self.engine.connection.usable:
            self.session.spawn(self.fetch_loras())

    async def fetch_loras(self) -> None:
        client = self.session.client
        if client is None:
            return
        try:
            self.state.loras = await client.loras()
        except EngineError as exc:
            log.info("could not list LoRAs: %s", exc)

    async def count_now(self) -> None:
        """Count both prompts with the active model's tokenizer; keep the newest answers."""
        client = self.session.client
        if client is None or not self.engine.connection.usable:
            return
        self._asked += 1
        asked = self._asked
        model = self.engine.active_model
        model_id = model.id if model else None
        g = self.generation
        try:
            prompt = await client.prompt_tokens(g.prompt, model_id, g.steps)
            negative = await client.prompt_tokens(g.negative_prompt, model_id, g.steps)
        except EngineError as exc:
            log.info("could not count tokens: %s", exc)
            return
        if asked == self._asked:
            self.state.prompt_tokens, self.state.negative_tokens = prompt, negative
