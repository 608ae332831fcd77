"""When a failing job is worth telling the admins about: a table of run sequences."""

from __future__ import annotations

import pytest

from relay.job_health import JobHealth, Verdict, failure_reason

A, B = "RuntimeError: boom", "OSError: disk full"
N, ALERT, OK = Verdict.NOTHING, Verdict.ALERT, Verdict.RECOVERED


@pytest.mark.parametrize(
    ("runs", "verdicts"),
    [
        pytest.param([A, A, A], [N, N, ALERT], id="third same failure alerts"),
        pytest.param([A, A, A, A, A], [N, N, ALERT, N, N], id="alerts once"),
        pytest.param([A, A, A, None], [N, N, ALERT, OK], id="recovery after an alert"),
        pytest.param([A, A, None], [N, N, N], id="no recovery without an alert"),
        pytest.param([A, A, None, A, A], [N, N, N, N, N], id="a success resets the count"),
        pytest.param([A, B, A, B], [N, N, N, N], id="different failures do not add up"),
        pytest.param([A, A, A, B, B, B], [N, N, ALERT, N, N, N], id="still broken: no second"),
        pytest.param([A, A, A, B, None], [N, N, ALERT, N, OK], id="recovery after any failure"),
        pytest.param(
            [A, A, A, None, A, A, A], [N, N, ALERT, OK, N, N, ALERT], id="alerts again later"
        ),
        pytest.param([None, None], [N, N], id="healthy"),
    ],
)
def test_verdicts(runs: list[str | None], verdicts: list[Verdict]) -> None:
    health = JobHealth()
    got = [health.succeeded("poll") if r is None else health.failed("poll", r) for r in runs]
    assert got == verdicts


def test_jobs_are_counted_apart() -> None:
    health = JobHealth()
    assert [health.failed(job, A) for job in ("poll", "send", "poll", "send")] == [N] * 4
    assert health.failed("poll", A) is ALERT
    assert health.succeeded("send") is N


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (RuntimeError("boom"), "RuntimeError: boom"),
        (TimeoutError(), "TimeoutError"),
        (ValueError("first line\nsecond line"), "ValueError: first line"),
        (OSError("x" * 500), "OSError: " + "x" * 200),
    ],
)
def test_failure_reason(exc: Exception, reason: str) -> None:
    assert failure_reason(exc) == reason
