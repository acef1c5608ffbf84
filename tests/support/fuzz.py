"""Property-based fuzzing of every engine route from its OpenAPI schema: schemathesis's
strategies, run by hypothesis, against the real engine app (tests/support/inprocess.py).
Used by tests/engine/test_fuzz.py (a short run) and bench/fuzz.py (a long one).
(schemathesis's own pytest plugin does not run under pytest 9, so the loop is written here.)
"""

from __future__ import annotations

from tests.support.inprocess import AUTH


def fuzz_routes(app, examples: int, seed: int | None = 0) -> tuple[dict[str, int], list[str]]:
    """Fuzz every operation of ``app``'s schema: (cases run per operation, failures as text).
    Routes with few possible inputs (``GET /v1/health``) get fewer cases than ``examples``."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=AUTH)
    failures, counts = [], {}
    for result in schema.get_all_operations():
        operation = result.ok()
        label = operation.label
        counts[label] = 0

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=seed is not None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            counts[label] += 1  # noqa: B023 - run() is called within this iteration
            # POST /v1/models/load with {} loads the default model: seconds on a busy CPU
            case.call_and_validate(headers=AUTH, checks=[not_a_server_error], timeout=300)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collected: every route is fuzzed, then reported
            failures.append(f"{operation.label}: {exc}"[:3000])
    return counts, failures
