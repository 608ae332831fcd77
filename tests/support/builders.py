"""Small builders for tests: RSS documents, a settable clock, relay settings for loopback."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from xml.sax.saxutils import escape

from feeds.config import FetchSettings
from relay.settings import PacingSettings, PollingSettings, Settings
from storage.items import NewItem

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in Paris


@dataclass
class Entry:
    guid: str
    title: str
    link: str
    published: datetime | None = None
    summary: str = ""


def rss(
    entries: list[Entry], *, title: str = "Boulangerie Martin", ttl: int | None = None
) -> bytes:
    """An RSS 2.0 document."""
    items = []
    for e in entries:
        date = f"<pubDate>{format_datetime(e.published)}</pubDate>" if e.published else ""
        items.append(
            f"<item><title>{escape(e.title)}</title><link>{escape(e.link)}</link>"
            f'<guid isPermaLink="false">{escape(e.guid)}</guid>{date}'
            f"<description>{escape(e.summary)}</description></item>"
        )
    ttl_tag = f"<ttl>{ttl}</ttl>" if ttl else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>https://martin.example/</link>{ttl_tag}"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


def entries(
    n: int, *, start: datetime = T0, prefix: str = "p", site: str = "https://martin.example"
) -> list[Entry]:
    """`n` entries, newest first, one hour apart, each with distinct French text."""
    words = ["pain", "croissant", "farine", "levain", "four", "marché", "brioche", "tarte"]
    return [
        Entry(
            guid=f"{prefix}{i}",
            title=f"Nouvelle {prefix}{i} : {words[i % len(words)]} du jour numéro {i}",
            link=f"{site}/{prefix}/{i}",
            published=start - timedelta(hours=i),
            summary=" ".join(
                f"{prefix}{words[(i + j) % len(words)]}{i * 7 + j}" for j in range(40)
            ),
        )
        for i in range(n)
    ]


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def relay_settings(**changes: object) -> Settings:
    """Settings that let the fetcher reach the loopback test servers."""
    base = Settings(
        fetch=FetchSettings(allowed_networks=("127.0.0.0/8",), total_timeout=5.0),
        polling=PollingSettings(parse_workers=0, jitter_fraction=0.0),
        pacing=PacingSettings(),
        channel="-1001234567890",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def item_row(business_id: int, identity: str, at: datetime, **fields: Any) -> NewItem:
    """A stored item as the tests need it: approved, no source, no dedupe keys by default."""
    values: dict[str, Any] = {
        "source_id": None,
        "business_id": business_id,
        "identity": identity,
        "story_key": None,
        "fingerprint": None,
        "fp_band0": None,
        "fp_band1": None,
        "fp_band2": None,
        "fp_band3": None,
        "title": identity,
        "link": None,
        "summary": None,
        "image": None,
        "published": at,
        "first_seen": at,
        "state": "approved",
        "approved_at": at,
    }
    return NewItem(**{**values, **fields})
