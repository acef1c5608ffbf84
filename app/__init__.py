"""Sfumato's GUI process (PySide6 + qasync). Never imports torch, diffusers or engine internals;
it talks to the engine over HTTP and WebSocket using :mod:`engine.protocol` only."""
