"""Each benchmark runs end to end at a tiny size and prints one JSON line (no thresholds)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from bench import dedupe, deliver, digests, fairness, hostile, poll

Main = Callable[[list[str]], dict[str, Any]]


def json_line(out: str) -> dict[str, Any]:
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    return json.loads(lines[0])


@pytest.mark.parametrize(
    ("main", "argv", "keys"),
    [
        pytest.param(
            poll.main,
            ["--sources", "12", "--cycles", "1", "--baseline-concurrency", "4"],
            {"steady_wall_s", "bare_httpx_best_req_per_s", "parse_ratio", "worker_peak_mb"},
            id="poll",
        ),
        pytest.param(
            deliver.main,
            ["--subscribers", "8", "--posts", "2", "--baseline", "8"],
            {"digest_rate_per_s", "count_429", "duplicates", "lost", "baseline"},
            id="deliver",
        ),
        pytest.param(
            dedupe.main,
            ["--items", "400", "800", "--batches", "2"],
            {"sizes", "prefill"},
            id="dedupe",
        ),
        pytest.param(
            digests.main,
            ["--subscribers", "30", "--items", "20", "--businesses", "5"],
            {"composed", "cpu_s", "digests_per_s", "longest_block_ms", "p99_block_ms"},
            id="digests",
        ),
        pytest.param(
            fairness.main,
            ["--businesses", "6", "--busy-per-day", "6", "--days", "2"],
            {"policies"},
            id="fairness",
        ),
        pytest.param(
            hostile.main,
            ["--only", "author_comment", "--timeout", "60"],
            {"cases"},
            id="hostile",
        ),
    ],
)
def test_benchmark_runs_and_prints_one_json_line(
    main: Main, argv: list[str], keys: set[str], capsys: pytest.CaptureFixture[str]
) -> None:
    returned = main(argv)
    printed = json_line(capsys.readouterr().out)
    assert printed["bench"] == returned["bench"]
    assert {"machine", "targets"} | keys <= set(printed)
    assert printed["machine"]["cores"] >= 1
