"""The app keeps the shape docs/architecture.md describes (issue 17, point 2).

- ``app/controller.py`` is a composition root of at most 200 lines: features live in
  ``app/controllers/``, the engine connection in ``app/session.py``, result files in
  ``app/library.py``.
- No runtime import circle in ``app/``: only imports that run when a module loads count
  (module level, ``if``/``try`` included); imports under ``if TYPE_CHECKING:`` and inside
  functions do not.
- Every job kind of the protocol is claimed by exactly one feature controller.
- ``app/state/`` stays pure state: no widgets, no engine client, no library I/O.
"""

from __future__ import annotations

import ast
from pathlib import Path

from app.controller import AppController
from app.paths import AppPaths
from app.session import LaunchOptions
from app.state import Settings
from engine.protocol import FIT_JOB_KINDS, JOB_KINDS

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
MAX_ROOT_LINES = 200


def test_the_composition_root_stays_small():
    lines = len((APP / "controller.py").read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_ROOT_LINES, (
        f"app/controller.py has {lines} lines (at most {MAX_ROOT_LINES}): put feature work in "
        "app/controllers/, the connection in app/session.py, files in app/library.py"
    )


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _load_time_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is loaded: module level, through ``if``/``try``/
    ``with`` blocks, but not under ``if TYPE_CHECKING:`` nor in functions or classes."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.append(node)
            elif isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (
                    node.body,
                    node.orelse,
                    node.finalbody,
                    *[h.body for h in node.handlers],
                ):
                    visit(block)
            elif isinstance(node, ast.With):
                visit(node.body)

    visit(tree.body)
    return found


def import_graph() -> dict[str, set[str]]:
    """app module → the app modules its loading loads (a package's ``__init__`` included)."""
    files = {_module_name(p): p for p in APP.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}

    def add(src: str, target: str) -> None:
        # Loading a.b.c loads a, a.b and a.b.c; but a package that holds ``src`` is already
        # loading when ``src`` loads, so only naming it outright (``from . import x``) counts.
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            implicit = i < len(parts) and src.startswith(name + ".")
            if name in files and name != src and not implicit:
                graph[src].add(name)

    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _load_time_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(name, alias.name)
                continue
            base = package
            for _ in range(max(0, node.level - 1)):
                base = base.rpartition(".")[0]
            module = node.module or ""
            target = module if node.level == 0 else ".".join(p for p in (base, module) if p)
            add(name, target)
            for alias in node.names:  # ``from pkg import submodule``
                if f"{target}.{alias.name}" in files:
                    add(name, f"{target}.{alias.name}")
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def test_the_graph_sees_imports():
    """The checker itself: it finds the edges it must (else the next test proves nothing)."""
    graph = import_graph()
    assert "app.session" in graph["app.controller"]
    assert "app.controllers.canvas_jobs" in graph["app.controllers.generate"]
    assert "app.state" in graph["app.controllers.generate"]  # a package's __init__ loads
    assert "app.ui.main_window" not in graph["app.ui.desktop"]  # TYPE_CHECKING only
    assert circles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]


def test_no_runtime_import_circles_in_app():
    assert circles(import_graph()) == []


def test_state_is_pure_state():
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("app.state"):
            outside = {t for t in targets if not t.startswith("app.state") and t != "app"}
            assert not outside, f"{name} loads {sorted(outside)}: app/state/ is pure state"
    for path in (APP / "state").rglob("*.py"):
        assert "QtWidgets" not in path.read_text(encoding="utf-8"), f"{path.name} has widgets"


def test_every_job_kind_has_one_controller(qapp, tmp_path: Path):
    c = AppController(
        AppPaths(tmp_path / "data"),
        Settings(tmp_path / "settings.ini"),
        LaunchOptions(spawn_engine=False),
    )
    try:
        claims = c.session.claims()
        assert set(claims) == set(JOB_KINDS), "a job kind no feature controller listens to"
        assert claims["generate"] is c.generate_jobs
        assert claims["sampler_grid"] is c.compare_jobs
        assert {claims[k] for k in FIT_JOB_KINDS} == {c.fit_jobs}
        assert claims["video_edit"] is c.video_jobs
        assert claims["prompt_robustness"] is c.robustness_jobs
    finally:
        c.history.index.close()
