"""The prompt_robustness job over the API, on the built-in model."""

import pytest

from engine.protocol import Job, split_words
from tests.engine.conftest import next_event

PROBE = {
    "base": {
        "model": "sfumato-tiny",
        "prompt": "red apple",
        "seed": 5,
        "width": 64,
        "height": 64,
        "steps": 4,
        "cfg_scale": 5.0,
        "sampler": "DDIM",
    },
    "samples": 3,
    "top_k": 1,
    "permutations": 200,
}


@pytest.mark.timeout(900)
async def test_probe_ranks_words_perturbs_and_saves_recipes(api):
    ws = await api.events()
    _, data = await api.call(
        "POST", "/jobs", {"job": {"kind": "prompt_robustness", "params": PROBE}}, 201
    )
    await next_event(ws, "progress", data["id"], timeout=300)
    job = Job.model_validate(await api.wait(data["id"], timeout=600))
    assert job.state == "done", job.message
    report = job.robustness
    assert report is not None and report.done
    n = 3
    # The prompt, one group per deleted word, three rules for the most important word.
    assert [g.kind for g in report.groups] == ["original", "deletion", "deletion"] + [
        "perturbation"
    ] * len(report.perturbations)
    assert [g.prompt for g in report.groups[:3]] == ["red apple", "apple", "red"]
    assert {w.word for w in report.words} == {"red", "apple"}
    assert all(w.mmd2 is not None and 0 < w.p_value <= 1 for w in report.words)
    assert max(w.importance for w in report.words) == 1.0
    top = max(report.words, key=lambda w: w.mmd2)
    assert {p.original for p in report.perturbations} == {top.word}
    assert {p.rule for p in report.perturbations} == {"typo", "glyph", "phonetic"}
    for p in report.perturbations:
        assert p.replaced != p.original and p.mmd2 is not None and p.p_value is not None
        assert p.prompt == "red apple".replace(p.original, p.replaced)
    # Every image saved with its own recipe; index = group * samples + i, seed = seed + i.
    assert sorted(r.index for r in job.results) == list(range(len(report.groups) * n))
    for r in job.results:
        assert r.seed == 5 + r.index % n
        _, png = await api.call("GET", f"/jobs/{job.id}/files/{r.name}", expect=200)
        assert report.groups[r.index // n].prompt.encode() in png
    await ws.close()


async def test_probe_refuses_a_prompt_without_words(api):
    body = {**PROBE, "base": {**PROBE["base"], "prompt": " ,, "}}
    status, data = await api.call(
        "POST", "/jobs", {"job": {"kind": "prompt_robustness", "params": body}}
    )
    assert status == 422 and "no words" in data["message"]
    assert split_words(" ,, ") == []
