"""When a scheduled job's failures are worth an admin's attention: a pure decision.

A job that fails now and then recovers by itself (a feed host down, a lock held); one that
fails the same way run after run needs a person. `JobHealth` counts, per job, the runs in a
row that failed with the same reason, says when to alert (once, at the threshold) and when
to announce the recovery (only after an alert). It does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

ALERT_AFTER = 3  # the same failure this many runs in a row
REASON_LENGTH = 200  # of an exception's first line: enough to recognise it in a notice


class Verdict(Enum):
    """What a run's outcome asks of the caller."""

    NOTHING = "nothing"
    ALERT = "alert"  # tell the admins the job keeps failing
    RECOVERED = "recovered"  # tell the admins it works again


@dataclass(slots=True)
class _Streak:
    reason: str
    runs: int = 1
    alerted: bool = False


@dataclass(slots=True)
class JobHealth:
    """Failure streaks by job name; `failed`/`succeeded` after each run say what to do."""

    alert_after: int = ALERT_AFTER
    _streaks: dict[str, _Streak] = field(default_factory=dict)

    def failed(self, job: str, reason: str) -> Verdict:
        """A run failed with `reason` (exception type and message)."""
        streak = self._streaks.get(job)
        if streak is None or streak.reason != reason:
            # A different failure starts a new count, but an alert already given stands:
            # the admins heard the job is broken and will hear when it works again.
            alerted = streak.alerted if streak else False
            streak = self._streaks[job] = _Streak(reason, alerted=alerted)
        else:
            streak.runs += 1
        if streak.runs >= self.alert_after and not streak.alerted:
            streak.alerted = True
            return Verdict.ALERT
        return Verdict.NOTHING

    def last_reason(self, job: str) -> str | None:
        """The reason of `job`'s current failure streak, if any."""
        streak = self._streaks.get(job)
        return streak.reason if streak else None

    def succeeded(self, job: str) -> Verdict:
        """A run went through."""
        streak = self._streaks.pop(job, None)
        return Verdict.RECOVERED if streak and streak.alerted else Verdict.NOTHING


def failure_reason(exc: BaseException) -> str:
    """The reason two failures are "the same": the exception's type and message."""
    lines = str(exc).strip().splitlines()
    message = lines[0][:REASON_LENGTH] if lines else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
