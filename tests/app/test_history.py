from __future__ import annotations

from pathlib import Path

from app.library import HistoryIndex
from app.state.history import HistoryState
from engine.protocol import GenerateParams


def params(prompt: str, **kw) -> GenerateParams:
    return GenerateParams(prompt=prompt, width=64, height=64, steps=4, **kw)


def test_add_list_newest_first(tmp_path: Path):
    idx = HistoryIndex(tmp_path / "h.sqlite3")
    idx.add(tmp_path / "a.png", params("first"), seed=1, created=100.0, job_id="j1")
    idx.add(tmp_path / "b.png", params("second"), seed=2, created=200.0)
    entries = idx.entries()
    assert [e.prompt for e in entries] == ["second", "first"]
    first = entries[1]
    assert first.path == (tmp_path / "a.png").resolve()
    assert (first.seed, first.width, first.height, first.job_id) == (1, 64, 64, "j1")
    assert first.params is not None and first.params.seed == 1  # the image's own seed
    assert len(idx) == 2 and (tmp_path / "a.png") in idx


def test_reindex_replaces_search_and_remove(tmp_path: Path):
    idx = HistoryIndex(tmp_path / "h.sqlite3")
    idx.add(tmp_path / "a.png", params("a red fox"), created=1.0)
    idx.add(tmp_path / "a.png", params("a red fox, again"), created=2.0)
    idx.add(tmp_path / "b.png", params("blue whale"), created=3.0)
    assert len(idx) == 2
    assert [e.prompt for e in idx.entries(search="RED")] == ["a red fox, again"]
    idx.remove(tmp_path / "a.png")
    assert [e.prompt for e in idx.entries()] == ["blue whale"]


def test_index_survives_reopen(tmp_path: Path):
    db = tmp_path / "sub" / "h.sqlite3"
    HistoryIndex(db).add(tmp_path / "a.png", params("kept"), created=1.0)
    assert [e.prompt for e in HistoryIndex(db).entries()] == ["kept"]


def test_history_state_tracks_the_index(qapp, tmp_path: Path):
    idx = HistoryIndex(tmp_path / "h.sqlite3")
    idx.add(tmp_path / "a.png", params("old"), created=1.0)
    state = HistoryState(idx)
    added = []
    state.added.connect(added.append)
    state.load()
    assert [e.prompt for e in state.entries] == ["old"]
    entry = idx.add(tmp_path / "b.png", params("new"), created=2.0)
    state.add(entry)
    assert [e.prompt for e in state.entries] == ["new", "old"] and added == [entry]
    state.load(search="old")
    assert [e.prompt for e in state.entries] == ["old"]
    state.add(idx.add(tmp_path / "c.png", params("unrelated"), created=3.0))
    assert [e.prompt for e in state.entries] == ["old"]  # filtered out by the search


def test_images_by_job(tmp_path: Path):
    idx = HistoryIndex(tmp_path / "h.sqlite3")
    idx.add(tmp_path / "j-001.png", params("p"), job_id="j")
    idx.add(tmp_path / "j-000.png", params("p"), job_id="j")
    idx.add(tmp_path / "k-000.png", params("p"), job_id="k")
    assert [e.path.name for e in idx.by_job("j")] == ["j-000.png", "j-001.png"]
