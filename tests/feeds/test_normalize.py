"""Tests for feeds.normalize: tables of real-world inputs, then hypothesis properties."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from feeds.normalize import (
    MAX_TEXT_CHARS,
    clean_link,
    clean_text,
    first_image_in_html,
    html_to_text,
    is_avatar,
    parse_date,
    sanitize_html,
    strip_tracking,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# -- clean_text ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Soldes d'hiver", "Soldes d'hiver"),
        ("  Soldes \n\t d'hiver  ", "Soldes d'hiver"),
        ("<b>Soldes</b> d'<i>hiver</i>", "Soldes d'hiver"),
        ("Soldes<script>alert('x')</script> d'hiver", "Soldes d'hiver"),
        ("Soldes<style>p { color: red }</style> d'hiver", "Soldes d'hiver"),
        ("Soldes<SCRIPT type='text/javascript'>var x = '<b>';</SCRIPT>!", "Soldes!"),
        ("Caf&eacute; &amp; cr&egrave;me", "Café & crème"),
        ("Caf&amp;eacute; ouvert", "Café ouvert"),  # double-escaped
        ("Fish &amp;amp; Chips", "Fish & Chips"),
        ("&lt;b&gt;Nouveau&lt;/b&gt; menu", "Nouveau menu"),  # escaped markup
        ("Fish & Chips < 5€", "Fish & Chips < 5€"),
        ("a < b > c", "a < b > c"),
        ("AT&T", "AT&T"),
        ("Prix&nbsp;:\u00a010\u202f€ \u2009 net", "Prix : 10 € net"),
        ("L&#8217;atelier &#x2014; ouvert", "L\u2019atelier \u2014 ouvert"),
        ("Ligne<br>suivante", "Ligne suivante"),
        ("<textarea><script>x</script></textarea>Titre", "Titre"),
        ("<!-- commentaire -->Titre", "Titre"),
        ("", None),
        ("   \u00a0 ", None),
        ("<script>only</script>", None),
        (None, None),
    ],
)
def test_clean_text(raw: str | None, expected: str | None) -> None:
    assert clean_text(raw) == expected


def test_clean_text_bounds_hostile_input() -> None:
    title = clean_text("<b>" * 50_000 + "x" * 50_000)
    assert title is None or len(title) <= MAX_TEXT_CHARS


def test_clean_text_never_invents_from_a_url() -> None:
    assert clean_text("<a href='https://example.com/soldes-d-hiver'></a>") is None


# -- strip_tracking --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://ex.fr/a?utm_source=fb&id=3", "https://ex.fr/a?id=3"),
        ("https://ex.fr/a?UTM_Source=x&Utm_medium=y&utm_CAMPAIGN=z", "https://ex.fr/a"),
        ("https://ex.fr/a?id=3&fbclid=abc&page=2", "https://ex.fr/a?id=3&page=2"),
        ("https://ex.fr/a?GCLID=1&mc_cid=2&MC_EID=3", "https://ex.fr/a"),
        ("https://ex.fr/a?utm_source=x#section-2", "https://ex.fr/a#section-2"),
        ("https://ex.fr/a?b=2&a=1&utm_term=x", "https://ex.fr/a?b=2&a=1"),
        ("https://ex.fr/a?q=caf%C3%A9+cr%e8me&utm_id=1", "https://ex.fr/a?q=caf%C3%A9+cr%e8me"),
        ("https://ex.fr/a?Page=2&PAGE=3", "https://ex.fr/a?Page=2&PAGE=3"),
        ("https://ex.fr/a?utmost=1&xutm_source=2", "https://ex.fr/a?utmost=1&xutm_source=2"),
        ("https://ex.fr/a?flag&utm_source", "https://ex.fr/a?flag"),
        ("https://ex.fr/a#?utm_source=x", "https://ex.fr/a#?utm_source=x"),
        ("https://ex.fr/a", "https://ex.fr/a"),
        ("https://ex.fr/a?", "https://ex.fr/a?"),
    ],
)
def test_strip_tracking(url: str, expected: str) -> None:
    assert strip_tracking(url) == expected


# -- clean_link ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "base", "expected"),
    [
        ("https://ex.fr/a", None, "https://ex.fr/a"),
        ("  https://ex.fr/a \n", None, "https://ex.fr/a"),
        ("/a", "https://ex.fr/blog/post", "https://ex.fr/a"),
        ("b", "https://ex.fr/blog/post", "https://ex.fr/blog/b"),
        ("//cdn.ex.fr/i.jpg", "https://ex.fr/", "https://cdn.ex.fr/i.jpg"),
        ("?p=2", "https://ex.fr/blog/", "https://ex.fr/blog/?p=2"),
        ("/a?utm_source=rss&id=1", "http://ex.fr", "http://ex.fr/a?id=1"),
        ("HTTPS://Ex.fr/A", None, "HTTPS://Ex.fr/A"),
        ("/a", None, None),
        ("//cdn.ex.fr/i.jpg", None, None),
        ("javascript:alert(1)", "https://ex.fr/", None),
        (" JavaScript:alert(1)", None, None),
        ("data:text/html,<script>", None, None),
        ("mailto:shop@ex.fr", None, None),
        ("ftp://ex.fr/file", None, None),
        ("a", "file:///etc/", None),
        ("https://", None, None),
        ("https://[::1", None, None),
        ("", "https://ex.fr/", None),
        (None, "https://ex.fr/", None),
    ],
)
def test_clean_link(raw: str | None, base: str | None, expected: str | None) -> None:
    assert clean_link(raw, base) == expected


# -- parse_date ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Mon, 03 Mar 2025 14:30:00 GMT", utc(2025, 3, 3, 14, 30)),
        ("Mon, 03 Mar 2025 14:30:00 +0000", utc(2025, 3, 3, 14, 30)),
        ("Mon, 03 Mar 2025 14:30:00 UTC", utc(2025, 3, 3, 14, 30)),
        ("Mon, 03 Mar 2025 14:30:00 Z", utc(2025, 3, 3, 14, 30)),
        ("Mon, 03 Mar 2025 14:30:00 +0100", utc(2025, 3, 3, 13, 30)),
        ("Mon, 03 Mar 2025 14:30:00 CET", utc(2025, 3, 3, 13, 30)),
        ("Thu, 03 Jul 2025 14:30:00 CEST", utc(2025, 7, 3, 12, 30)),
        ("Thu, 03 Jul 2025 14:30:00 BST", utc(2025, 7, 3, 13, 30)),
        ("Tue, 04 Mar 2025 10:00:00 EST", utc(2025, 3, 4, 15, 0)),
        ("Tue, 04 Mar 2025 10:00:00 -0500", utc(2025, 3, 4, 15, 0)),
        ("Fri, 04 Jul 2025 10:00:00 EDT", utc(2025, 7, 4, 14, 0)),
        ("Tue, 04 Mar 2025 10:00:00 PST", utc(2025, 3, 4, 18, 0)),
        ("Fri, 04 Jul 2025 10:00:00 PDT", utc(2025, 7, 4, 17, 0)),
        ("4 Mar 2025 10:00 GMT", utc(2025, 3, 4, 10, 0)),
        ("Tue, 4 Mar 25 10:00:00 GMT", utc(2025, 3, 4, 10, 0)),
        ("Tue, 04 Mar 2025 10:00:00 +01:00", utc(2025, 3, 4, 9, 0)),
        ("2025-03-03T14:30:00Z", utc(2025, 3, 3, 14, 30)),
        ("2025-03-03T14:30:00+02:00", utc(2025, 3, 3, 12, 30)),
        ("2025-03-03T14:30:00.123456-05:00", utc(2025, 3, 3, 19, 30, 0, 123456)),
        ("2025-03-03T14:30:00", utc(2025, 3, 3, 14, 30)),
        ("2025-03-03 14:30:00", utc(2025, 3, 3, 14, 30)),
        ("2025-03-03", utc(2025, 3, 3)),
        ("2025-03-03 14:30:00 CEST", utc(2025, 3, 3, 12, 30)),
        ("lundi 3 mars 2025 14:30", utc(2025, 3, 3, 14, 30)),
        ("Lundi 3 Mars 2025", utc(2025, 3, 3)),
        ("3 mars 2025", utc(2025, 3, 3)),
        ("1er avril 2025", utc(2025, 4, 1)),
        ("mardi 1er avril 2025 à 9h05", utc(2025, 4, 1, 9, 5)),
        ("03 févr. 2025", utc(2025, 2, 3)),
        ("3 janv. 2025", utc(2025, 1, 3)),
        ("3 janvier 2025", utc(2025, 1, 3)),
        ("14 février 2025", utc(2025, 2, 14)),
        ("14 fevrier 2025", utc(2025, 2, 14)),
        ("10 avr. 2025", utc(2025, 4, 10)),
        ("1 mai 2025", utc(2025, 5, 1)),
        ("21 juin 2025", utc(2025, 6, 21)),
        ("14 juillet 2025", utc(2025, 7, 14)),
        ("14 juil. 2025", utc(2025, 7, 14)),
        ("15 août 2025", utc(2025, 8, 15)),
        ("15 aout 2025", utc(2025, 8, 15)),
        ("1 sept. 2025", utc(2025, 9, 1)),
        ("1 septembre 2025", utc(2025, 9, 1)),
        ("31 oct. 2025", utc(2025, 10, 31)),
        ("11 nov. 2025", utc(2025, 11, 11)),
        ("25 déc. 2025", utc(2025, 12, 25)),
        ("25 décembre 2025 18:00", utc(2025, 12, 25, 18, 0)),
        ("vendredi 25 DÉCEMBRE 2025", utc(2025, 12, 25)),
        ("3 mars 2025 14:30 CET", utc(2025, 3, 3, 13, 30)),
        ("March 3, 2025 2:30 PM PST", utc(2025, 3, 3, 22, 30)),
        ("Thu, 01 Jan 2099 00:00:00 GMT", utc(2099, 1, 1)),  # the future is kept as stated
    ],
)
def test_parse_date(raw: str, expected: datetime) -> None:
    parsed = parse_date(raw)
    assert parsed == expected
    assert parsed is not None
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "   ",
        "0000-00-00",
        "0000-00-00 00:00:00",
        "0000-00-00T00:00:00Z",
        "1900-01-01",
        "Mon, 01 Jan 1900 00:00:00 GMT",
        "garbage",
        "3",
        "lundi",
        "Monday",
        "14:30",
        "32 mars 2025",
        "3 jui 2025",  # juin or juillet?
        "3 marbles 2025",
        "2025-13-45",
        "99999999999999999999",
        "Mon, 03 Mar 99999 14:30:00 GMT",
    ],
)
def test_parse_date_refuses(raw: str | None) -> None:
    assert parse_date(raw) is None


def test_parse_date_reads_naive_dates_in_the_assumed_zone() -> None:
    paris_winter = timezone(timedelta(hours=1))
    assert parse_date("lundi 3 mars 2025 14:30", assume=paris_winter) == utc(2025, 3, 3, 13, 30)
    assert parse_date("2025-03-03T14:30:00Z", assume=paris_winter) == utc(2025, 3, 3, 14, 30)


# -- html_to_text ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("<p>Bonjour</p><p>à tous</p>", "Bonjour à tous"),
        ("<div>Un<br/>deux</div><ul><li>trois</li><li>quatre</li></ul>", "Un deux trois quatre"),
        ("<p>Pain <b>frais</b>&nbsp;!</p>", "Pain frais !"),
        ("<p>Texte</p><script>var a = 1;</script><style>p{}</style>", "Texte"),
        ("&lt;p&gt;Échappé&lt;/p&gt;", "Échappé"),
        ("Fish &amp; Chips < 5€", "Fish & Chips < 5€"),
        ("<img src='x.jpg'>", None),
        ("", None),
        (None, None),
    ],
)
def test_html_to_text(fragment: str | None, expected: str | None) -> None:
    assert html_to_text(fragment) == expected


@pytest.mark.parametrize(
    ("fragment", "max_chars", "expected"),
    [
        ("<p>un deux trois quatre</p>", 100, "un deux trois quatre"),
        ("<p>un deux trois quatre</p>", 14, "un deux trois…"),
        ("<p>un deux trois quatre</p>", 13, "un deux…"),
        ("<p>un deux, trois quatre</p>", 14, "un deux…"),
        ("<p>anticonstitutionnellement</p>", 10, "anticonst…"),
    ],
)
def test_html_to_text_cuts_at_a_word(fragment: str, max_chars: int, expected: str) -> None:
    assert html_to_text(fragment, max_chars) == expected


# -- sanitize_html ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("<p>Bonjour</p>", "<p>Bonjour</p>"),
        ("<p onclick='steal()'>Bonjour</p>", "<p>Bonjour</p>"),
        ("<p>a</p><script>alert(1)</script>", "<p>a</p>"),
        ("<iframe src='https://evil.example'></iframe><p>a</p>", "<p>a</p>"),
        ("<div><span>a</span></div>", "a"),
        (
            "<a href='/p?utm_source=x&amp;id=1'>lien</a>",
            '<a href="https://ex.fr/p?id=1" rel="noopener noreferrer nofollow">lien</a>',
        ),
        ("<a href='javascript:alert(1)'>x</a>", '<a rel="noopener noreferrer nofollow">x</a>'),
        ("<img src='i.jpg' onerror='x()' alt='vitrine'>",
         '<img src="https://ex.fr/blog/i.jpg" alt="vitrine">'),
        ("<img src='data:image/png;base64,AAAA'>", "<img>"),
        ("<h2>Titre</h2><figure><img src='/i.jpg'><figcaption>c</figcaption></figure>",
         '<h2>Titre</h2><figure><img src="https://ex.fr/i.jpg"><figcaption>c</figcaption></figure>'),
        ("   ", None),
        (None, None),
    ],
)  # fmt: skip
def test_sanitize_html(fragment: str | None, expected: str | None) -> None:
    assert sanitize_html(fragment, "https://ex.fr/blog/") == expected


def test_sanitize_html_drops_relative_links_without_a_base() -> None:
    assert sanitize_html("<a href='/p'>x</a>", None) == (
        '<a rel="noopener noreferrer nofollow">x</a>'
    )


# -- images ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://secure.gravatar.com/avatar/0123abcd?s=96&d=mm",
        "https://www.gravatar.com/avatar/0123abcd",
        "https://0.gravatar.com/avatar/0123abcd",
        "https://ex.fr/wp-content/uploads/avatars/12/photo-bpthumb.jpg",
        "https://ex.fr/wp-content/uploads/2024/01/avatar-96x96.jpg",
        "https://ex.fr/forum/avatar/12.png",
        "https://avatars.githubusercontent.com/u/1?v=4",
        "https://img1.blogblog.com/img/blank.gif",
        "https://resources.blogblog.com/img/b16-rounded.gif",
        "https://www.blogger.com/img/b16-rounded.gif",
        "https://s.w.org/images/core/emoji/15.0.3/72x72/1f600.png",
        "https://feeds.feedburner.com/~r/Blog/~4/AbCdEf",
        "https://pixel.wp.com/b.gif?host=ex.fr",
        "https://ex.fr/images/spacer.gif",
        "https://ex.fr/track/1x1.gif",
    ],
)
def test_is_avatar(url: str) -> None:
    assert is_avatar(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://ex.fr/wp-content/uploads/2024/01/vitrine.jpg",
        "https://ex.fr/images/avatar-de-la-boutique.jpg",  # only /avatar/ folders count
        "https://cdn.ex.fr/photos/pain.webp",
        "https://blogger.googleusercontent.com/img/b/R29v/s1600/gateau.jpg",
        "https://s.w.org/about/logo.png",
        "not a url",
    ],
)
def test_is_not_avatar(url: str) -> None:
    assert not is_avatar(url)


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("<p><img src='/i/vitrine.jpg'></p>", "https://ex.fr/i/vitrine.jpg"),
        (
            "<img src='https://secure.gravatar.com/avatar/x'><img src='https://ex.fr/a.jpg'>",
            "https://ex.fr/a.jpg",
        ),
        ("<img src='/pixel.png' width='1' height='1'><img src='b.jpg'>", "https://ex.fr/blog/b.jpg"),
        (
            "<img src='data:image/gif;base64,R0lGOD' data-src='/real.jpg?a=1&amp;b=2'>",
            "https://ex.fr/real.jpg?a=1&b=2",
        ),
        ("<img data-lazy-src='lazy.jpg'>", "https://ex.fr/blog/lazy.jpg"),
        ("<img src='javascript:alert(1)'>", None),
        ("<script>'<img src=/x.jpg>'</script>", None),
        ("<p>pas d'image</p>", None),
        ("", None),
        (None, None),
    ],
)  # fmt: skip
def test_first_image_in_html(fragment: str | None, expected: str | None) -> None:
    assert first_image_in_html(fragment, "https://ex.fr/blog/") == expected


# -- properties ------------------------------------------------------------------------------

_TRACKING_NAMES = st.sampled_from(
    ["utm_source", "UTM_Medium", "Utm_campaign", "utm_", "fbclid", "GCLID", "mc_cid", "MC_EID"]
)
_PARAM_NAME = st.text(alphabet="abcxyzABC_%20-.", min_size=1, max_size=8).filter(
    lambda name: (
        not name.lower().startswith("utm_")
        and name.lower() not in {"fbclid", "gclid", "mc_cid", "mc_eid"}
    )
)
_PARAM_VALUE = st.text(alphabet="abc123%+=-_.~/:", max_size=8)


@st.composite
def _urls_with_params(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A URL mixing tracking and ordinary parameters, and its ordinary ones in order."""
    kept = [f"{draw(_PARAM_NAME)}={draw(_PARAM_VALUE)}" for _ in range(draw(st.integers(0, 4)))]
    params = list(kept)
    for _ in range(draw(st.integers(0, 4))):
        tracker = f"{draw(_TRACKING_NAMES)}={draw(_PARAM_VALUE)}"
        params.insert(draw(st.integers(0, len(params))), tracker)
    fragment = draw(st.sampled_from(["", "#top", "#a?utm_source=x"]))
    query = "?" + "&".join(params) if params else ""
    return f"https://ex.fr/p{query}{fragment}", kept


@given(_urls_with_params())
def test_strip_tracking_keeps_other_params_in_order(case: tuple[str, list[str]]) -> None:
    url, kept = case
    stripped = strip_tracking(url)
    assert strip_tracking(stripped) == stripped
    query = stripped.partition("#")[0].partition("?")[2]
    assert (query.split("&") if query else []) == kept
    assert stripped.partition("#")[2] == url.partition("#")[2]


@given(st.text(max_size=200))
def test_strip_tracking_is_idempotent(url: str) -> None:
    assert strip_tracking(strip_tracking(url)) == strip_tracking(url)


@given(
    st.one_of(st.none(), st.text(max_size=100), st.from_regex(r"\A[a-zA-Z]{2,10}:[^\n]{0,40}")),
    st.sampled_from([None, "https://ex.fr/blog/", "http://ex.fr", "ftp://ex.fr/", "//ex.fr/"]),
)
def test_clean_link_is_http_or_none(raw: str | None, base: str | None) -> None:
    link = clean_link(raw, base)
    assert link is None or link.startswith(("http://", "https://"))


# Text that looks like what reaches clean_text: markup, entities, escapes, odd spaces.
_TITLE_PIECES = st.sampled_from(
    ["<", ">", "&", ";", "/", "!", "amp", "lt", "gt", "#", "x", "<script>", "</script>"]
    + ["<b>", "</b>", "<p>", "<style>", "&amp;", "&lt;", "&gt;", "&nbsp;", "&eacute;"]
    + ["\u00a0", "\u202f", " ", "\n", "é", "Soldes", "<!--", "-->", "<textarea>"]
)
_TITLES = st.one_of(st.text(max_size=80), st.lists(_TITLE_PIECES, max_size=30).map("".join))


@given(_TITLES)
@example("&amp;lt;script&amp;gt;x")
@example("&lt;<script>")
def test_clean_text_output_is_clean(raw: str) -> None:
    title = clean_text(raw)
    if title is not None:
        assert "<script" not in title.lower()
        assert title == title.strip()
        assert "  " not in title
        assert not re.search(r"\s", title.replace(" ", ""))


@given(_TITLES)
def test_clean_text_is_idempotent(raw: str) -> None:
    title = clean_text(raw)
    # Only two decodings are done, by design (the brief: "decode once more"): a title that
    # still holds a decodable entity after them was escaped three times or more, and a
    # further call would decode it again. Such titles are left out of the property.
    assume(title is None or html.unescape(title) == title)
    assert clean_text(title) == title


@given(st.text(max_size=300))
def test_parse_date_never_raises(raw: str) -> None:
    parsed = parse_date(raw)
    assert parsed is None or parsed.tzinfo is not None


@given(st.text(max_size=300), st.integers(min_value=1, max_value=600))
def test_html_to_text_is_bounded(fragment: str, max_chars: int) -> None:
    text = html_to_text(fragment, max_chars)
    assert text is None or (len(text) <= max_chars and text == text.strip())


@given(st.text(max_size=300))
def test_sanitize_html_leaves_no_script(fragment: str) -> None:
    cleaned = sanitize_html(fragment, "https://ex.fr/")
    assert cleaned is None or "<script" not in cleaned.lower()
