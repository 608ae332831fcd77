"""Documents written by someone who wants to hurt the relay: every byte is theirs.

Each case says what must come out (an error with its code, or the items still readable) and
bounds the CPU time it may cost; before the fixes each of them took from 6 s to several
minutes, or a gigabyte of memory. The documents are the benchmark's (`bench.hostile`).
CPU time, not wall time: other processes share the machine.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

import pytest

from bench import hostile
from feeds.errors import EntitiesRefusedError, NotAFeedError, ParseError
from feeds.pages import parse_page
from feeds.parse import parse_feed
from feeds.xmlprep import AUTHOR_MAX_CHARS, ENTITY_EXPANSION_MAX_CHARS, ENTITY_MAX_CHARS

URL = "https://hostile.example/feed"


@contextmanager
def cpu_budget(seconds: float) -> Iterator[None]:
    """Fail when the block uses more than `seconds` of this process's CPU time."""
    started = time.process_time()
    yield
    used = time.process_time() - started
    assert used < seconds, f"{used:.2f}s of CPU"


def rss(items: str, doctype: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n{doctype}<rss version="2.0"><channel>'
        f"<title>Shop</title><link>https://shop.example/</link>{items}</channel></rss>"
    ).encode()


def item(inner: str, n: int = 1) -> str:
    return f"<item><title>Item {n}</title><link>https://shop.example/{n}</link>{inner}</item>"


def entity_doctype(*declarations: str) -> str:
    return "<!DOCTYPE rss [\n" + "\n".join(declarations) + "\n]>\n"


# -- 8. entity expansion --------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [hostile.entities_600k, hostile.entities_300k, hostile.author_entity],
    ids=lambda build: build.__name__,
)
def test_entity_expansion_is_refused_before_parsing(build: Callable[[], bytes]) -> None:
    content = build()
    with cpu_budget(0.5), pytest.raises(EntitiesRefusedError) as caught:
        parse_feed(content, URL)
    assert (caught.value.code, caught.value.url) == ("entities_refused", URL)


NETSCAPE = (
    '<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
    '"http://my.netscape.com/publish/formats/rss-0.91.dtd">\n'
)


@pytest.mark.parametrize(
    ("doctype", "title", "expected"),
    [
        pytest.param(NETSCAPE, "Caf&eacute; &amp; th&eacute;", "Café & thé", id="netscape dtd"),
        pytest.param(
            entity_doctype('<!ENTITY nbsp "&#160;">', "<!ENTITY shop 'Martin &amp; Fils'>"),
            "&shop;&nbsp;news",
            "Martin & Fils news",
            id="small entities expanded",
        ),
        pytest.param(
            entity_doctype('<!ENTITY % pe "x">', '<!ENTITY ext SYSTEM "http://evil.example/">'),
            "A &ext; B",
            "A &ext; B",
            id="external and parameter entities never expanded",
        ),
        pytest.param(
            entity_doctype("<!-- ]> inside a comment -->", '<!ENTITY a "A">', "<!ELEMENT rss ANY>"),
            "&a;&a;",
            "AA",
            id="comments and other declarations",
        ),
        pytest.param(
            entity_doctype('<!ENTITY a "A">', '<!ENTITY a "B">'),
            "&a;",
            "A",
            id="the first declaration binds",
        ),
        pytest.param("", "&undeclared; &#0;&#x1;x", "&undeclared; x", id="no dtd"),
    ],
)
def test_doctypes_that_are_read(doctype: str, title: str, expected: str) -> None:
    feed = parse_feed(rss(f"<item><title>{title}</title></item>", doctype), URL)
    assert [i.title for i in feed.items] == [expected]
    assert not feed.malformed  # expat read it: feedparser's fallback parser never ran


@pytest.mark.parametrize(
    ("declarations", "references"),
    [
        pytest.param(['<!ENTITY a "' + "x" * (ENTITY_MAX_CHARS + 1) + '">'], 1, id="too long"),
        pytest.param(['<!ENTITY a "x">', '<!ENTITY b "&a;&a;">'], 1, id="nested"),
        pytest.param(
            ['<!ENTITY a "' + "x" * ENTITY_MAX_CHARS + '">'],
            ENTITY_EXPANSION_MAX_CHARS // ENTITY_MAX_CHARS + 1,
            id="too many references",
        ),
    ],
)
def test_entities_that_are_refused(declarations: list[str], references: int) -> None:
    content = rss(item(f"<description>{'&a;' * references}</description>"))
    content = content.replace(b"<rss", entity_doctype(*declarations).encode() + b"<rss", 1)
    with cpu_budget(0.5), pytest.raises(EntitiesRefusedError):
        parse_feed(content, URL)


@pytest.mark.parametrize(
    ("subset", "error"),
    [
        ("<!-- >" * 100_000, NotAFeedError),  # comments that never close
        ("<? >" * 100_000, NotAFeedError),
        ('<!ENTITY a "' * 50_000, NotAFeedError),  # values that never close
        ("<!-- a -->" * 50_000 + '<!ENTITY a "x">', None),  # many, but closed
    ],
    ids=["unclosed comments", "unclosed instructions", "unclosed values", "many comments"],
)
def test_reading_a_dtd_is_linear(subset: str, error: type[Exception] | None) -> None:
    content = rss(item("<description>&a;</description>"), f"<!DOCTYPE rss [{subset}]>")
    with cpu_budget(0.5):
        if error is None:
            assert parse_feed(content, URL).items[0].summary == "x"
            return
        with pytest.raises(error):
            parse_feed(content, URL)


# -- 9. the author cap ------------------------------------------------------------------------

_A_LOT = "a" * 84_000


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(hostile.author_comment(), id="fake close in a comment"),
        pytest.param(rss(item(f"<author><![CDATA[</author>]]>{_A_LOT}</author>")), id="cdata"),
        pytest.param(
            rss(
                item(f"<author>{'&a;' * (AUTHOR_MAX_CHARS // 3)}</author>"),
                entity_doctype(f'<!ENTITY a "{"a" * ENTITY_MAX_CHARS}">'),
            ),
            id="entities (short raw text, long once expanded)",
        ),
        pytest.param(rss(item(f"<dc:creator>{_A_LOT}</dc:creator>")), id="long creator"),
    ],
)
def test_the_author_cap_holds_whatever_the_markup(content: bytes) -> None:
    with cpu_budget(0.5):
        feed = parse_feed(content.replace(b"<rss ", _DC, 1), URL)
    assert [i.title for i in feed.items] == ["Item 1"]
    assert feed.items[0].link is not None


_DC = b'<rss xmlns:dc="http://purl.org/dc/elements/1.1/" '


def test_a_short_author_is_kept_as_before() -> None:
    content = rss(item("<author>shop@shop.example (Martin)</author><!-- </author> -->"))
    assert [i.title for i in parse_feed(content, URL).items] == ["Item 1"]


# -- 10. HTML cleaning, one budget per document ---------------------------------------------------


@pytest.mark.parametrize(
    ("build", "count"),
    [(hostile.deep_div_1, 1), (hostile.deep_div_6, 6)],
    ids=["one item", "six items"],
)
def test_deeply_nested_descriptions_cost_little(build: Callable[[], bytes], count: int) -> None:
    content = build()
    with cpu_budget(1.0):
        feed = parse_feed(content, URL)
    assert [(i.title, i.link) for i in feed.items] == [
        (f"Item {n}", f"https://hostile.example/{n}") for n in (range(count) if count > 1 else [1])
    ]


def test_nested_markup_keeps_its_text() -> None:
    description = "<div>" * 5000 + "<p>Deep <b>text</b></p>" + "</div>" * 5000
    with cpu_budget(0.5):
        feed = parse_feed(rss(item(f"<description><![CDATA[{description}]]></description>")), URL)
    assert feed.items[0].summary == "Deep text"


# -- 12. deep pages --------------------------------------------------------------------------


def test_a_page_nested_thousands_deep_is_read() -> None:
    with cpu_budget(1.0):
        feed = parse_page(hostile.deep_page(), "https://hostile.example/")
    assert [(i.title, i.link) for i in feed.items] == [
        ("Deep post", "https://hostile.example/post")
    ]


@contextmanager
def recursion_room(frames: int) -> Iterator[None]:
    """Only `frames` more Python frames than the caller has (Python's own limit is 1,000)."""
    depth = 0
    frame: FrameType | None = sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + frames)
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def test_a_recursion_error_becomes_one_parse_error() -> None:
    # With less room than mf2py needs for the (already bounded) page, as on a smaller stack.
    content = hostile.deep_page()
    with recursion_room(150), pytest.raises(ParseError) as caught:
        parse_page(content, "https://hostile.example/")
    assert isinstance(caught.value.__cause__, RecursionError)
    assert type(caught.value) is ParseError
