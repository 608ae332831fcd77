"""Prepare an XML feed document for feedparser, and judge whether it was cut short.

feedparser is lenient in ways that mislead: it trusts a wrong declared encoding, reads a
bare ``&lang=fr`` in a link as the entity ``〈``, files a picture's caption as the post's
title, and runs a quadratic regex over author fields. Each function here removes one of those
traps, in linear time, before feedparser sees the text.
"""

from __future__ import annotations

import codecs
import html.entities
import re

AUTHOR_MAX_CHARS = 1024  # feedparser's author-email regex is quadratic beyond a few KB

_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([\w.:-]+)["']""")
_LATIN1_LABELS = {"iso-8859-1", "iso8859-1", "latin-1", "latin1", "us-ascii", "ascii"}
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_AMPERSAND = re.compile(r"&(?:(#\d+|#x[0-9a-fA-F]+)|([A-Za-z][\w.-]*));|&")
_XML_ENTITIES = {"amp", "lt", "gt", "quot", "apos"}
_MISLEADING = re.compile(
    r"<((?:[\w.-]+:)?(?:author|creator|managingEditor|webMaster|publisher|contributor)"
    r"|media:title|media:description)(?:\s[^>]*)?(?<!/)>",
    re.I,
)
_TRAILING_COMMENT = re.compile(r"<!--(?:(?!<!--).)*?-->\s*\Z", re.S)
_ROOT_CLOSE = re.compile(r"</(?:[\w.-]+:)?(?:rss|feed|RDF)\s*>\Z")


def decode_document(content: bytes, charset: str | None) -> str:
    """The document as text, whatever its declarations claim.

    A BOM decides. Else valid UTF-8 wins (text in another encoding is almost never valid
    UTF-8); else the HTTP charset, then the XML declaration, if the bytes decode with it
    (Latin-1 labels read as windows-1252, as browsers do); else UTF-8 with each invalid byte
    read as windows-1252, which also mends a UTF-8 page with one pasted windows-1252 paragraph.
    """
    for bom, encoding in _BOMS:
        if content.startswith(bom):
            return content[len(bom) :].decode(encoding, "replace")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared = _XML_ENCODING.match(content.lstrip()[:200])
    for label in (charset, declared.group(1).decode("ascii") if declared else None):
        decoded = _decode_as(content, label)
        if decoded is not None:
            return decoded
    return content.decode("utf-8", "relay-cp1252")


def _decode_as(content: bytes, label: str | None) -> str | None:
    """``content`` decoded with a declared charset; None when that fails or says UTF-8."""
    if not label:
        return None
    label = label.strip().lower()
    encoding = "cp1252" if label in _LATIN1_LABELS else label
    try:
        if codecs.lookup(encoding).name == "utf-8":
            return None
        return content.decode(encoding)
    except (LookupError, UnicodeDecodeError):
        return None


def _cp1252_fallback(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: bytes that are not UTF-8 read as windows-1252 (else Latin-1)."""
    assert isinstance(error, UnicodeDecodeError)
    bad = error.object[error.start : error.end]
    return "".join(bytes([b]).decode("cp1252", "ignore") or chr(b) for b in bad), error.end


codecs.register_error("relay-cp1252", _cp1252_fallback)


def feedparser_input(text: str) -> bytes:
    """UTF-8 bytes for feedparser, with its traps removed."""
    return fix_ampersands(drop_misleading_elements(text)).encode("utf-8")


def fix_ampersands(text: str) -> str:
    """Make every ``&`` well-formed XML; CDATA sections are left alone.

    A bare ``&`` becomes ``&amp;`` and an HTML entity XML does not know (``&nbsp;``,
    ``&eacute;``) becomes a character reference. Otherwise the document is ill-formed and
    feedparser's fallback parser takes over, which reads ``&lang=fr`` in a link as ``〈``.
    """
    pieces: list[str] = []
    pos = 0
    while (start := text.find("<![CDATA[", pos)) != -1:
        end = text.find("]]>", start)
        end = len(text) if end == -1 else end + 3
        pieces += (_AMPERSAND.sub(_fix_ampersand, text[pos:start]), text[start:end])
        pos = end
    pieces.append(_AMPERSAND.sub(_fix_ampersand, text[pos:]))
    return "".join(pieces)


def _fix_ampersand(match: re.Match[str]) -> str:
    """The well-formed form of one ampersand (see `fix_ampersands`)."""
    number, name = match.groups()
    if number or name in _XML_ENTITIES:
        return match.group(0)
    if name is None:
        return "&amp;"
    character = html.entities.html5.get(f"{name};")
    # An unknown name may be declared in the document's DTD: leave it to the parser.
    return "".join(f"&#{ord(c)};" for c in character) if character else match.group(0)


def drop_misleading_elements(text: str) -> str:
    """Remove elements that mislead feedparser, in one linear pass.

    - media:title / media:description describe a picture, but feedparser files them as the
      entry's title and summary when the entry has none of its own (or has it after them).
    - author-like elements longer than AUTHOR_MAX_CHARS: feedparser's email regex is
      quadratic on them. The relay does not use authors, so nothing is lost.

    Each closing tag is looked for once, from where the previous element ended. An unclosed
    element ends the document: it was cut there anyway.
    """
    pieces: list[str] = []
    pos = 0
    while (opening := _MISLEADING.search(text, pos)) is not None:
        name = opening.group(1)
        close = text.find(f"</{name}", opening.end())
        is_author = not name.lower().startswith("media:")
        if close != -1 and is_author and close - opening.end() <= AUTHOR_MAX_CHARS:
            pieces.append(text[pos:close])
            pos = close
            continue
        pieces.append(text[pos : opening.start()])
        pos = len(text) if close == -1 else (text.find(">", close) + 1 or len(text))
    pieces.append(text[pos:])
    return "".join(pieces)


def is_truncated(text: str) -> bool:
    """True when the root element is not closed at the end (whitespace and comments aside)."""
    tail = text[-4096:].rstrip()
    while tail.endswith("-->"):
        comment = _TRAILING_COMMENT.search(tail)
        if comment is None:
            break
        tail = tail[: comment.start()].rstrip()
    return _ROOT_CLOSE.search(tail) is None


def closed_entries(text: str, entry_tag: str) -> int:
    """How many ``</item>`` (or ``</entry>``) closing tags the text holds, any prefix."""
    return len(re.findall(rf"</(?:[\w.-]+:)?{entry_tag}\s*>", text))
