"""engine/kinds.py is the one table of job kinds: it matches the protocol's ``JobSpec`` exactly,
the server, service and fast path read it, and no other module spells a kind's name — so a new
kind is its spec class in ``JobSpec`` plus one row."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

from starlette.testclient import TestClient

from engine.kinds import KINDS, ROWS
from engine.protocol import (
    FIT_JOB_KINDS,
    JOB_KINDS,
    JOB_SPECS,
    FitInfo,
    GenerateJob,
    JobSpec,
    SamplerGridJob,
    kind_of,
)
from tests.support.inprocess import AUTH, engine_app

ROOT = Path(__file__).resolve().parents[2]
#: Where a kind's name may be written: its spec class's ``kind: Literal[…]`` tag.
SPEC_MODULES = {"engine/protocol.py", "engine/video_protocol.py"}


def test_the_table_matches_jobspec_exactly():
    union = get_args(get_args(JobSpec)[0])
    assert JOB_SPECS == union
    assert [row.spec for row in ROWS if row.spec not in union] == []  # every row is in JobSpec
    assert [spec for spec in union if spec not in {row.spec for row in ROWS}] == []  # and back
    names = [row.name for row in ROWS]
    assert len(names) == len(set(names)) == len(union)  # one row per kind, names unique
    assert set(KINDS) == set(JOB_KINDS)
    assert all(callable(row.check) and callable(row.runner) for row in ROWS)


def test_a_kinds_name_is_its_spec_tag():
    assert kind_of(GenerateJob) == GenerateJob().kind == "generate"
    assert KINDS["sampler_grid"].spec is SamplerGridJob
    fit_kinds = get_args(FitInfo.model_fields["kind"].annotation)
    assert set(FIT_JOB_KINDS) <= set(JOB_KINDS) and set(FIT_JOB_KINDS.values()) == set(fit_kinds)


def _kind_literals(source: str, where: str) -> list[str]:
    return [
        f"{where}:{node.lineno} {node.value!r}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and node.value in KINDS
    ]


def test_no_other_module_spells_a_kind_name():
    """Server, service, fast path, job modules and the app name kinds through the table or
    ``kind_of``: a string literal equal to a kind's name anywhere else is a second place a new
    or renamed kind would have to be taught."""
    found = []
    for folder in ("engine", "app"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            where = str(path.relative_to(ROOT))
            if where not in SPEC_MODULES:
                found += _kind_literals(path.read_text(encoding="utf-8"), where)
    assert found == []


def test_the_scan_finds_a_spelled_kind():
    """The scan above can fail: a comparison with a literal kind is caught."""
    source = 'def f(job):\n    return job.kind == "video_edit"\n'
    assert _kind_literals(source, "x.py") == ["x.py:2 'video_edit'"]


def test_the_engine_runs_and_checks_every_kind_through_the_table(tmp_path, tiny_models_dir):
    app, engine = engine_app(tmp_path / "data", tiny_models_dir)
    assert set(engine.queue.runners) == set(JOB_KINDS)
    client = TestClient(app, raise_server_exceptions=False)  # no lifespan: nothing runs
    # Each kind's check runs (a sampler grid is refused for its own reason, by its own row)
    r = client.post(
        "/v1/jobs",
        headers=AUTH,
        json={
            "job": {
                "kind": "sampler_grid",
                "params": {"samplers": ["No such sampler"], "steps": [4]},
            }
        },
    )
    assert r.status_code == 422 and r.json()["field"] == "job.params.samplers.0.sampler"
    r = client.post("/v1/jobs", headers=AUTH, json={"job": {"kind": "paint"}})
    assert r.status_code == 422
    assert all(name in r.json()["message"] for name in JOB_KINDS)
    r = client.post(
        "/v1/jobs",
        headers=AUTH,
        json={"job": {"kind": "analytic_fit", "params": {"model": "none"}}},
    )
    assert r.status_code == 422 and r.json()["field"] == "job.params.model"
