"""Fan-out of engine events to WebSocket subscribers, safe to publish from the worker thread."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from engine.protocol import JobPreview, JobProgress


class EventBus:
    def __init__(self, max_backlog: int = 512) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: set[asyncio.Queue] = set()
        self._max_backlog = max_backlog

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish(self, event) -> None:
        """Thread-safe: may be called from the worker thread or the event loop."""
        if self._loop is None or self._loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._fanout(event)
        else:
            with contextlib.suppress(RuntimeError):  # loop closing during shutdown
                self._loop.call_soon_threadsafe(self._fanout, event)

    def _fanout(self, event) -> None:
        for queue in self._subscribers:
            if queue.qsize() >= self._max_backlog and isinstance(event, (JobPreview, JobProgress)):
                continue  # a slow client loses previews and progress ticks, never results
            queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue]:
        queue: asyncio.Queue = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
