"""Parse hostile documents (a stranger controls every byte) and measure what each one costs.

    python -m bench.hostile [--only NAME ...] [--cap-mb 1536] [--timeout 120]

Each document is built in memory and parsed in a fresh child process (so that one case's
memory or a stuck parse never touches the next), with its address space capped by
RLIMIT_AS: a case that needs more is reported "killed at cap" instead of exhausting the
machine. The parent reads the child's own peak RSS with ``os.wait4``.

The documents: internal DTD entities expanded without limit by feedparser's fallback parser
(600 KB and 300 KB), an author field inflated by an entity or hidden behind a fake closing tag
in a comment (feedparser's author-email regex is quadratic), descriptions nested 50,000
``<div>`` deep (one item, six items), and a page nested 3,000 levels deep (mf2py recursion).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from feeds.models import ParsedFeed  # plain dataclasses: the children stay lean

URL = "https://hostile.example/feed"
DEFAULT_CAP_MB = 1536
DEFAULT_TIMEOUT_S = 120.0


# --- the documents --------------------------------------------------------------------------


def _rss(items: str, doctype: str = "") -> bytes:
    """An RSS 2.0 document around `items`, with an optional DOCTYPE."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f"{doctype}"
        '<rss version="2.0"><channel><title>Hostile</title><link>https://hostile.example/</link>'
        f"{items}</channel></rss>"
    ).encode()


def _item(index: int, inner: str) -> str:
    return (
        f"<item><title>Item {index}</title><link>https://hostile.example/{index}</link>"
        f"<guid>https://hostile.example/{index}</guid>{inner}</item>"
    )


def _entity_doctype(value: str) -> str:
    return f'<!DOCTYPE rss [\n<!ENTITY a "{value}">\n]>\n'


def entities_600k() -> bytes:
    """One 7,000-character entity referenced 200,000 times in one description (≈600 KB)."""
    description = f"<description>{'&a;' * 200_000}</description>"
    return _rss(_item(1, description), _entity_doctype("x" * 7000))


def entities_300k() -> bytes:
    """The same entity referenced 100,000 times, over 100 items (≈300 KB)."""
    items = "".join(_item(i, f"<description>{'&a;' * 1000}</description>") for i in range(100))
    return _rss(items, _entity_doctype("x" * 7000))


def author_entity() -> bytes:
    """An 80,000-character entity in an <author>: three characters in the raw text."""
    return _rss(_item(1, "<author>&a;</author>"), _entity_doctype("a" * 80_000))


def author_comment() -> bytes:
    """A fake </author> inside a comment, then 84,000 characters of author (≈84 KB)."""
    return _rss(_item(1, f"<author><!-- </author> -->{'a' * 84_000}</author>"))


def _deep_div(depth: int) -> str:
    return "<div>" * depth + "<p>Deep text</p>" + "</div>" * depth


def deep_div_1() -> bytes:
    """One description nested 50,000 <div> deep (≈550 KB)."""
    return _rss(_item(1, f"<description><![CDATA[{_deep_div(50_000)}]]></description>"))


def deep_div_6() -> bytes:
    """Six such descriptions (≈3.3 MB)."""
    description = f"<description><![CDATA[{_deep_div(50_000)}]]></description>"
    return _rss("".join(_item(i, description) for i in range(6)))


def deep_page() -> bytes:
    """An h-entry page nested 3,000 levels deep."""
    body = (
        '<div class="h-entry"><h1 class="p-name">Deep post</h1>'
        '<a class="u-url" href="/post">link</a>'
        f"{'<div>' * 3000}<p>Deep text</p>{'</div>' * 3000}</div>"
    )
    head = "<head><title>Deep</title></head>"
    return f"<!DOCTYPE html><html>{head}<body>{body}</body></html>".encode()


Builder = Callable[[], bytes]
CASES: dict[str, tuple[Builder, bool]] = {  # name -> (builder, is a page)
    "entities_600k": (entities_600k, False),
    "entities_300k": (entities_300k, False),
    "author_entity": (author_entity, False),
    "author_comment": (author_comment, False),
    "deep_div_1": (deep_div_1, False),
    "deep_div_6": (deep_div_6, False),
    "deep_page_3000": (deep_page, True),
}


# --- the child: parse one document ----------------------------------------------------------


def child(name: str, cap_mb: int) -> None:
    """Build and parse one document under a memory cap; print one JSON line."""
    cap = cap_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    build, page = CASES[name]
    content = build()
    parse = _parser(page)  # imported before the clock starts: not the document's cost
    started = time.perf_counter()
    try:
        outcome = _outcome(parse(content, URL))
    except MemoryError:
        outcome = "killed at cap (MemoryError)"
    except Exception as exc:  # the point is to see what escapes
        outcome = f"{type(exc).__name__}: {getattr(exc, 'code', '')} {str(exc)[-80:]}"
    seconds = time.perf_counter() - started
    peak = _own_peak_mb()
    print(json.dumps({"bytes": len(content), "parse_s": seconds, "outcome": outcome} | peak))


def _own_peak_mb() -> dict[str, float]:
    """This process's own peak RSS (VmHWM, reset by exec; ru_maxrss is not: it starts at the
    parent's size when forked)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return {"peak_mb": int(line.split()[1]) / 1024}
    return {}


def _parser(page: bool) -> Callable[[bytes, str], ParsedFeed]:
    """The parser the relay uses at registration (content kept), imported in the child only."""
    from feeds.pages import parse_page
    from feeds.parse import parse_feed

    return parse_page if page else parse_feed


def _outcome(parsed: ParsedFeed) -> str:
    titles = [item.title for item in parsed.items]
    return f"ok: {len(titles)} items, first {titles[0]!r}" if titles else "ok: 0 items"


# --- the parent: one fresh process per case -------------------------------------------------


def run_case(name: str, cap_mb: int, timeout: float) -> dict[str, Any]:
    """Run one case in a child process; its wall time, peak RSS and outcome."""
    command = [sys.executable, "-m", "bench.hostile", "--child", name, "--cap-mb", str(cap_mb)]
    # Files, not pipes: a child that writes a lot (a traceback) must never block on a pipe.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        with subprocess.Popen(command, stdout=out, stderr=err) as process:
            status, usage, killed = _wait(process, started + timeout)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        printed, errors = out.read().decode(), err.read().decode()
    row: dict[str, Any] = {"case": name, "bytes": None, "wall_s": wall, "parse_s": None}
    row["peak_mb"] = usage.ru_maxrss / 1024  # the child's own figure replaces it if it has one
    lines = [line for line in printed.splitlines() if line.startswith("{")]
    if lines:
        row.update(json.loads(lines[-1]))
    elif killed:
        row["outcome"] = f"timeout after {timeout:g}s (killed)"
    elif os.WIFSIGNALED(status):
        row["outcome"] = f"killed by signal {os.WTERMSIG(status)} (memory cap?)"
    else:
        row["outcome"] = "crashed: " + (errors.strip().splitlines() or ["?"])[-1][:100]
    return row


def _wait(process: subprocess.Popen[bytes], deadline: float) -> tuple[int, Any, bool]:
    """Wait for the child (killing it at the deadline); its status and own resource usage."""
    killed = False
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = status  # reaped here: keep Popen from waiting again
            return status, usage, killed
        if time.perf_counter() > deadline and not killed:
            process.kill()
            killed = True
        time.sleep(0.02)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), default=None)
    parser.add_argument("--cap-mb", type=int, default=DEFAULT_CAP_MB)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    parser.add_argument("--child", choices=sorted(CASES), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.child:
        child(args.child, args.cap_mb)
        return {}
    rows = [run_case(name, args.cap_mb, args.timeout) for name in args.only or CASES]
    # Imported only now: SQLAlchemy & co. would make the children's ru_maxrss start higher.
    from bench.common import print_json, print_table

    print_table(f"Hostile documents, one child each (cap {args.cap_mb} MB)", rows)
    worst = max(rows, key=lambda row: row["parse_s"] or row["wall_s"])
    return print_json(
        "hostile",
        {
            "cases": rows,
            "targets": {
                "each_parse_under_1s": all((row["parse_s"] or 99) < 1.0 for row in rows),
                "worst_case": worst["case"],
                "worst_wall_s": round(worst["wall_s"], 3),
            },
        },
    )


if __name__ == "__main__":
    main()
