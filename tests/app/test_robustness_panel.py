"""The Robustness panel's state and widgets, without an engine."""

from __future__ import annotations

from datetime import UTC, datetime

from app.controllers.robustness import RobustnessController
from app.state.generation import GenerationSettings
from app.state.jobs import JobsState
from app.state.robustness import RobustnessState, significance
from app.ui.robustness_dock import RobustnessDockWidget, chip_colours
from engine.protocol import (
    GenerateParams,
    Job,
    JobFinished,
    JobState,
    Perturbation,
    RobustnessGroup,
    RobustnessJob,
    RobustnessParams,
    RobustnessReport,
    WordImportance,
)

from .bare_session import bare_session


def _contrast(a: str, b: str) -> float:
    def lum(h: str) -> float:
        vals = [int(h[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        vals = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in vals]
        return 0.2126 * vals[0] + 0.7152 * vals[1] + 0.0722 * vals[2]

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_chip_text_is_readable_at_every_shade():
    for dark in (True, False):
        for k in range(11):
            bg, fg = chip_colours(k / 10, dark)
            assert _contrast(bg, fg) >= 4.5, (dark, k, bg, fg)
    assert chip_colours(0.0, True)[0] != chip_colours(1.0, True)[0]


def test_cost_is_said_before_running(qapp):
    s = RobustnessState()
    base = GenerateParams(prompt="a red ball on green grass", steps=20)
    s.samples, s.top_k = 4, 2
    assert s.cost_text(base) == f"Up to {4 * (1 + 6 + 2 * 3)} images of 20 steps."
    s.seconds_per_step = 0.01
    assert "about 10 s here" in s.cost_text(base)
    s.top_k = 0  # every word
    assert s.params(base).top_k is None and s.params(base).image_count() == 4 * (1 + 6 + 18)
    assert s.cost_text(GenerateParams(prompt="  ")).startswith("Write a prompt")
    assert significance(0.001) == "clearly changes the images"
    assert significance(0.6) == "no change detected"


def _report() -> RobustnessReport:
    return RobustnessReport(
        prompt="red apple",
        samples=2,
        seed=1,
        features="x",
        permutations=100,
        groups=[
            RobustnessGroup(group=g, kind=k, prompt=p)
            for g, k, p in [
                (0, "original", "red apple"),
                (1, "deletion", "apple"),
                (2, "deletion", "red"),
                (3, "perturbation", "rde apple"),
                (4, "perturbation", "Red apple"),
            ]
        ],
        words=[
            WordImportance(index=0, word="red", group=1, mmd2=0.4, p_value=0.01, importance=1),
            WordImportance(index=1, word="apple", group=2, mmd2=0.1, p_value=0.3, importance=0.25),
        ],
        perturbations=[
            Perturbation(
                group=3,
                word_index=0,
                rule="typo",
                original="red",
                replaced="rde",
                prompt="rde apple",
                mmd2=0.3,
                p_value=0.02,
            ),
            Perturbation(
                group=4,
                word_index=0,
                rule="glyph",
                original="red",
                replaced="Red",
                prompt="Red apple",
                mmd2=0.05,
                p_value=0.7,
            ),
        ],
        done=True,
    )


def test_panel_shows_chips_rows_and_uses_a_wording(qtbot, tmp_path):
    generation = GenerationSettings()
    generation.prompt = "red apple"
    state = RobustnessState()
    jobs = JobsState()
    session = bare_session(tmp_path, jobs)
    session.spawn = lambda coro: coro.close()  # type: ignore[method-assign]
    controller = RobustnessController(state, generation, session)
    others: list = []
    session.claim(None, others.append)  # what the canvas would be sent
    panel = RobustnessDockWidget(state, generation)
    qtbot.addWidget(panel)
    panel.wording_requested.connect(controller.use_wording)
    assert panel.chips.count() == 2 and not panel.rows

    spec = RobustnessJob(params=RobustnessParams(base=GenerateParams(prompt="red apple")))
    job = Job(
        id="j1",
        kind="prompt_robustness",
        state=JobState.done,
        spec=spec,
        created_at=datetime.now(UTC),
        robustness=_report(),
    )
    state.job_id = "j1"
    session.handle_event(JobFinished(job=job))
    assert not others  # claimed: not the canvas's
    assert state.status == "done" and "Red apple" in state.message[1]
    assert len(panel.rows) == 2
    assert "most robust" in panel.rows[1].title.text()
    assert "most robust" not in panel.rows[0].title.text()
    assert "p = 0.020" in panel.rows[0].verdict.text()
    chips = [panel.chips.itemAt(i).widget() for i in range(panel.chips.count())]
    assert "0.400" in chips[0].toolTip() and chips[0].styleSheet() != chips[1].styleSheet()
    panel.rows[1].use_button.click()
    assert generation.prompt == "Red apple"

    # A generate job's events are left to the rest of the app.
    other = Job(
        id="g",
        kind="generate",
        state=JobState.done,
        spec={"kind": "generate", "params": {}},
        created_at=datetime.now(UTC),
    )
    session.handle_event(JobFinished(job=other))
    assert len(others) == 1 and state.status == "done"


def test_rules_and_top_k_edit_the_state(qtbot):
    state = RobustnessState()
    panel = RobustnessDockWidget(state, GenerationSettings())
    qtbot.addWidget(panel)
    panel.rule_boxes["glyph"].setChecked(False)
    assert state.rules == ["typo", "phonetic"]
    panel.every_word.setChecked(True)
    assert state.top_k == 0 and not panel.top_k_spin.isEnabled()
    panel.every_word.setChecked(False)
    panel.top_k_spin.setValue(5)
    assert state.top_k == 5
    for box in panel.rule_boxes.values():
        box.setChecked(False)
    assert not panel.run_button.isEnabled()  # nothing to try


def test_probe_request_is_a_plain_recipe(qapp):
    """The probe renders without uncertainty or batches, whatever the Prompt panel has on."""
    import warnings

    from engine.protocol import UncertaintyOptions

    base = GenerateParams(
        prompt="red apple", batch_size=4, batch_count=2, uncertainty=UncertaintyOptions()
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pydantic warns when a field holds the wrong type
        params = RobustnessState().params(base)
        RobustnessParams.model_validate_json(params.model_dump_json())
    assert params.base.uncertainty is None
    assert (params.base.batch_size, params.base.batch_count) == (1, 1)


def test_results_fit_the_dock_column(qtbot):
    """A long prompt and long variants wrap: the panel never grows wider than its dock."""
    from PySide6.QtWidgets import QScrollArea

    generation = GenerationSettings()
    state = RobustnessState()
    panel = RobustnessDockWidget(state, generation)
    qtbot.addWidget(panel)
    report = _report()
    long = "red apple, noto style, on a yellow background, very detailed, masterpiece"
    report.prompt = long
    for p in report.perturbations:
        p.prompt = long.replace("red", p.replaced)
        p.original, p.replaced = "background", "backgrroundd"
    state.report = report
    body = panel.findChild(QScrollArea).widget()
    # the dock column's body is 370 px wide (test_layout.py checks the real window); with the
    # theme's stylesheet applied by earlier tests the panel needs 354
    assert body.minimumSizeHint().width() <= 360, body.minimumSizeHint()
    # Under a real X server fonts are wider than offscreen: the labels that grow with the
    # prompt must wrap rather than set the panel's width.
    for label in (panel.original_label, *(row.title for row in panel.rows)):
        assert label.minimumSizeHint().width() < label.sizeHint().width(), label.text()
