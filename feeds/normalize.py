"""Normalise feed and page fields: titles, links, dates, summaries, images, HTML.

Pure functions, no I/O. INTERFACE STUB: being implemented.
"""

from __future__ import annotations

from datetime import datetime

SUMMARY_MAX_CHARS = 500


def clean_text(raw: str | None) -> str | None:
    """Plain text from a title-like field; None when nothing is left."""
    raise NotImplementedError


def strip_tracking(url: str) -> str:
    """Remove utm_* (any case), fbclid, gclid, mc_cid, mc_eid; keep everything else verbatim."""
    raise NotImplementedError


def clean_link(raw: str | None, base: str | None) -> str | None:
    """Absolute http(s) link without tracking parameters, or None."""
    raise NotImplementedError


def parse_date(raw: str | None) -> datetime | None:
    """A UTC datetime from RFC 822 / ISO 8601 / French dates; None when absent or meaningless."""
    raise NotImplementedError


def html_to_text(html: str | None, max_chars: int = SUMMARY_MAX_CHARS) -> str | None:
    """Plain-text summary of an HTML fragment, bounded at a word boundary."""
    raise NotImplementedError


def sanitize_html(html: str | None, base: str | None) -> str | None:
    """Safe HTML (nh3): no scripts, no event handlers, links absolute and http(s) only."""
    raise NotImplementedError


def is_avatar(url: str) -> bool:
    """True for author pictures (gravatar, avatar paths) that must not stand for a post."""
    raise NotImplementedError
