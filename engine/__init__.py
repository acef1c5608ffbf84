"""Sfumato's engine: hosts the models and serves the /v1 API (see engine.protocol)."""

__version__ = "0.1.0"
