""" "Copy diagnostic info": what a bug report needs, and never the engine's token."""

from __future__ import annotations

import platform
import sys
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from . import __version__
from .engine_locator import is_frozen

if TYPE_CHECKING:
    from .controller import AppController


def safe_url(url: str) -> str:
    """``url`` without user:password and query (a token could ride in either)."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def qt_versions() -> tuple[str, str]:
    import PySide6
    from PySide6.QtCore import qVersion

    return qVersion(), PySide6.__version__


def diagnostic_text(controller: AppController) -> str:
    """Plain text: app, Python, Qt, OS; the engine (URL without token, state, device, versions);
    the folders in use."""
    c = controller
    qt, pyside = qt_versions()
    lines = [
        f"Sfumato {__version__}" + (" (packaged)" if is_frozen() else " (from source)"),
        f"Python {platform.python_version()} · Qt {qt} · PySide6 {pyside}",
        f"OS: {platform.platform()}",
        "",
        "Engine",
        f"  mode: {'remote' if c.is_remote else 'local'}",
        f"  url: {safe_url(c.engine.url) or '-'}",
        f"  connection: {c.engine.connection.value}",
    ]
    if not c.is_remote:
        python = (
            c.options.engine_python
            or c.settings.engine_python
            or ("" if is_frozen() else sys.executable)
        )
        lines.append(f"  python: {python or 'not chosen'}")
    h = c.engine.health
    if h is not None:
        lines += [
            f"  version: {h.version} (API {h.api})",
            f"  device: {h.device}"
            + (f" · {h.gpu}" if h.gpu else "")
            + (f" · {h.dtype}" if h.dtype else ""),
            f"  torch {h.torch or '?'} · diffusers {h.diffusers or '?'}"
            + (f" · Python {h.python}" if h.python else ""),
            f"  model: {h.model or '(none loaded)'}; default: {h.default_model or '-'}",
        ]
    if c.engine.detail:
        lines.append(f"  detail: {c.engine.detail.splitlines()[0]}")
    lines += [
        "",
        "Folders",
        f"  data: {c.paths.data_dir}",
        f"  outputs: {c.output_dir}",
        f"  models: {c.paths.models}",
        f"  logs: {c.paths.logs}",
    ]
    return "\n".join(lines) + "\n"


def about_html(controller: AppController) -> str:
    """The About box's text."""
    qt, pyside = qt_versions()
    h = controller.engine.health
    if h is None:
        engine = "<i>not connected</i>"
    else:
        gpu = h.gpu or ("no GPU (CPU)" if h.device == "cpu" else h.device)
        engine = (
            f"engine {h.version} · torch {h.torch or '?'} · diffusers "
            f"{h.diffusers or '?'}<br>device: {h.device} · {gpu}"
        )
    return (
        f"<h3>Sfumato {__version__}</h3>"
        "<p>A desktop studio for diffusion models.</p>"
        f"<p>{engine}</p>"
        f"<p>Python {platform.python_version()} · Qt {qt} · PySide6 {pyside}</p>"
        "<p>Apache-2.0</p>"
    )
