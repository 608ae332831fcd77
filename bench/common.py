"""Shared by the benchmarks: timing, peak memory, the table and JSON line they print, a fresh
database (SQLite file or PostgreSQL schema), and a description of the machine."""

from __future__ import annotations

import json
import os
import platform
import resource
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from storage.engine import Database
from storage.migrate import upgrade

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


# --- timing and memory --------------------------------------------------------------------


class Stopwatch:
    """``with Stopwatch() as watch: ...`` then ``watch.seconds``."""

    def __init__(self) -> None:
        self.started = 0.0
        self.seconds = 0.0

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.seconds = time.perf_counter() - self.started


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is in KB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS; False when not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _status_mb(pid: int, field: str) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def current_peak_mb() -> float:
    """This process's VmHWM (peak RSS since the last reset), in MB."""
    return _status_mb(os.getpid(), "VmHWM")


def children_peak_mb(exclude: Sequence[int] = ()) -> dict[int, float]:
    """Peak RSS (VmHWM) of each live child process, in MB, by pid."""
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return {pid: _status_mb(pid, "VmHWM") for pid in sorted(pids - set(exclude))}


# --- output -------------------------------------------------------------------------------


def print_table(title: str, rows: Sequence[dict[str, Any]]) -> None:
    """A plain aligned table: one row per dict, columns from the first row."""
    if not rows:
        return
    columns = list(rows[0])
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return "" if value is None else str(value)


def print_json(bench: str, figures: dict[str, Any]) -> dict[str, Any]:
    """The benchmark's ONE JSON line (machine description included); returns it as a dict."""
    line = {"bench": bench, "machine": machine(), **figures}
    print(json.dumps(line, default=str, sort_keys=False))
    return line


# --- databases ----------------------------------------------------------------------------


def postgres_url() -> str:
    return (
        os.environ.get("RELAY_BENCH_DATABASE_URL")
        or os.environ.get("RELAY_TEST_DATABASE_URL")
        or DEFAULT_POSTGRES_URL
    )


@contextmanager
def fresh_database(kind: str, workdir: Path) -> Iterator[Database]:
    """A migrated, empty database: a SQLite file in `workdir`, or a new PostgreSQL schema."""
    if kind == "sqlite":
        database = Database(f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.db'}")
        upgrade(database)
        try:
            yield database
        finally:
            database.dispose()
        return
    url, schema = postgres_url(), f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    database = Database(url, schema=schema)
    try:
        upgrade(database)
        yield database
    finally:
        database.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


# --- the machine --------------------------------------------------------------------------

_MACHINE: dict[str, Any] = {}


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, Python, SQLite and PostgreSQL versions (cached)."""
    if not _MACHINE:
        _MACHINE.update(
            cpu=_cpu_model(),
            cores=os.cpu_count(),
            ram_gb=round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            python=platform.python_version(),
            sqlite=sqlite3.sqlite_version,
            postgres=_postgres_version(),
        )
    return dict(_MACHINE)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _postgres_version() -> str | None:
    try:
        engine = create_engine(postgres_url(), connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar()
        engine.dispose()
    except Exception:  # no server: the SQLite figures stand alone
        return None
    return str(version)
