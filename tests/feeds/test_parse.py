"""Feed parsing: every fixture document against its hand-written expected output, then the
rules that fixtures alone do not pin down (truncation, errors, duplicates, kind sniffing)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from feeds.errors import NotAFeedError
from feeds.models import FeedItem, ParsedFeed
from feeds.parse import detect_kind, parse_feed

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
EXPECTED = sorted(FIXTURES.glob("*.expected.json"))
URL = "https://example.fr/feed/"


def _document(expected_path: Path) -> Path:
    """The fixture document beside an expected file (any extension)."""
    stem = expected_path.name.removesuffix(".expected.json")
    (document,) = (p for p in FIXTURES.glob(f"{stem}.*") if p != expected_path)
    return document


def _published(item: FeedItem) -> str | None:
    return item.published.strftime("%Y-%m-%dT%H:%M:%SZ") if item.published else None


def _check_item(item: FeedItem, want: dict[str, Any]) -> None:
    for key in ("title", "link", "guid", "image"):
        assert getattr(item, key) == want[key], key
    assert _published(item) == want["published"]
    if "summary_startswith" in want:
        assert item.summary is not None
        assert item.summary.startswith(want["summary_startswith"])
        assert len(item.summary) <= 500
    else:
        assert item.summary == want["summary"]


@pytest.mark.parametrize("expected_path", EXPECTED, ids=lambda p: p.name.split(".")[0])
def test_fixture(expected_path: Path) -> None:
    want = json.loads(expected_path.read_text(encoding="utf-8"))
    content = _document(expected_path).read_bytes()
    if "error" in want:
        with pytest.raises(NotAFeedError):
            parse_feed(content, want["url"], content_type=want.get("content_type"))
        return
    feed = parse_feed(content, want["url"], content_type=want.get("content_type"))
    assert (feed.kind, feed.title) == (want["kind"], want["title"])
    for key in ("link", "ttl_minutes", "malformed"):
        if key in want:
            assert getattr(feed, key) == want[key], key
    assert [item.title for item in feed.items] == [item["title"] for item in want["items"]]
    for item, wanted in zip(feed.items, want["items"], strict=True):
        _check_item(item, wanted)


def test_every_fixture_has_an_expected_file() -> None:
    documents = {p.name.split(".")[0] for p in FIXTURES.iterdir()}
    expected = {p.name.split(".")[0] for p in EXPECTED}
    assert documents == expected
