"""Prepare an XML feed document for feedparser, and judge whether it was cut short.

feedparser is lenient in ways that mislead: it trusts a wrong declared encoding, reads a
bare ``&lang=fr`` in a link as the entity ``〈``, files a picture's caption as the post's
title, runs a quadratic regex over author fields, and, when expat refuses a document, falls
back to a parser that expands the DTD's entities without any limit (a 600 KB feed reached
1 GB). Each function here removes one of those traps, in linear time, before feedparser sees
the text.

DTD entities: the internal subset (``<!DOCTYPE rss [ ... ]>``) is taken out of the document
and the entities it declares are expanded here, in one pass that never re-reads what it
inserted, each value at most ENTITY_MAX_CHARS and all of them together at most
ENTITY_EXPANSION_MAX_CHARS; a document asking for more is refused (`EntitiesRefusedError`).
Why not refuse every internal subset: hand-made feeds declare a few HTML entities that way
(``<!ENTITY nbsp "&#160;">``) and deserve to be read. Why not leave them to the parsers:
neither expat nor feedparser's fallback would then see a declaration, so no parser can
expand without limit, and the size of every field is known before parsing, which is what
lets the author cap below hold. A DOCTYPE without a subset (RSS 0.91's Netscape DTD) stays.
"""

from __future__ import annotations

import codecs
import html.entities
import re
from collections.abc import Mapping

from feeds.errors import EntitiesRefusedError, NotAFeedError

AUTHOR_MAX_CHARS = 1024  # feedparser's author-email regex is quadratic beyond a few KB
ENTITY_MAX_CHARS = 64  # a declared entity stands for a character or a few words
ENTITY_EXPANSION_MAX_CHARS = 1_000_000  # all references of one document together

_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([\w.:-]+)["']""")
_LATIN1_LABELS = {"iso-8859-1", "iso8859-1", "latin-1", "latin1", "us-ascii", "ascii"}
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_AMPERSAND = re.compile(r"&(?:(#\d+|#x[0-9a-fA-F]+)|([A-Za-z][\w.-]*));|&")
_XML_ENTITIES = {"amp", "lt", "gt", "quot", "apos"}
_XML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}
# Characters XML 1.0 forbids (expat refuses a reference to one: references to them are
# dropped; the characters themselves are left to the parsers and `normalize.scrub_feed`).
_NOT_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# An author-like element, or a comment or CDATA section (whose content is not markup).
_MISLEADING_OR_OPAQUE = re.compile(
    r"<!--|<!\[CDATA\[|<((?:[\w.-]+:)?(?:author|creator|managingEditor|webMaster|publisher"
    r"|contributor)|media:title|media:description)(?:\s[^<>]*)?(?<!/)>",
    re.I,
)
_OPAQUE_ENDS = {"<!--": "-->", "<![CDATA[": "]]>"}
_FEED_ROOT = re.compile(r"<(?:[\w.-]+:)?(?:rss|feed|RDF)\b")
_DOCTYPE = re.compile(r"<!DOCTYPE\b", re.I)
_DOCTYPE_HEAD = re.compile(r"""<!DOCTYPE(?:[^\[>"']|"[^"]*"|'[^']*')*""", re.I)
_SUBSET_END = re.compile(r"\]\s*>")
# Comments and processing instructions are skipped with str.find (an unclosed one must not
# be scanned again at every later position); the rest is whitespace, a parameter-entity
# reference or a declaration, quoted values included.
_SUBSET_TOKEN = re.compile(r"""\s+|%[\w.:-]+;|<!(?!--)(?:[^>"']|"[^"]*"|'[^']*')*>""")
_SUBSET_SKIPPED = {"<!--": "-->", "<?": "?>"}
_ENTITY = re.compile(r"""<!ENTITY\s+(%\s+)?([\w.:-]+)\s+(?:"([^"]*)"|'([^']*)')\s*>""")
_ENTITY_VALUE_REF = re.compile(r"&(?:#(\d{1,8})|#x([0-9a-fA-F]{1,8})|(amp|lt|gt|quot|apos));|[&%]")
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


def feedparser_input(text: str, url: str) -> bytes:
    """UTF-8 bytes for feedparser, with its traps removed; EntitiesRefusedError (see above)."""
    text, entities = take_internal_subset(text, url)
    return drop_misleading_elements(fix_ampersands(text, entities, url=url)).encode("utf-8")


def take_internal_subset(text: str, url: str) -> tuple[str, dict[str, str]]:
    """The document without its DTD internal subset, and the general entities it declares.

    Only a DOCTYPE before the root element counts. Parameter and external entities are
    dropped (no parser here fetches or uses them); see the module docstring for the limits.
    """
    root = _FEED_ROOT.search(text)
    doctype = _DOCTYPE.search(text, 0, root.start() if root else len(text))
    head = _DOCTYPE_HEAD.match(text, doctype.start()) if doctype else None
    if head is None or not text.startswith("[", head.end()):
        return text, {}
    declarations, end = _internal_subset(text, head.end() + 1, url)
    return text[: head.end()] + ">" + text[end:], _entities(declarations, url)


def _internal_subset(text: str, pos: int, url: str) -> tuple[list[str], int]:
    """The ENTITY declarations of the subset starting at `pos`, and where the DOCTYPE ends."""
    declarations: list[str] = []
    while (end := _SUBSET_END.match(text, pos)) is None:
        opening = next((o for o in _SUBSET_SKIPPED if text.startswith(o, pos)), None)
        if opening:
            close = text.find(_SUBSET_SKIPPED[opening], pos + len(opening))
            if close == -1:
                raise NotAFeedError(url, "unreadable DOCTYPE declaration")
            pos = close + len(_SUBSET_SKIPPED[opening])
            continue
        token = _SUBSET_TOKEN.match(text, pos)
        if token is None:
            raise NotAFeedError(url, "unreadable DOCTYPE declaration")
        if token.group().startswith("<!ENTITY"):
            declarations.append(token.group())
        pos = token.end()
    return declarations, end.end()


def _entities(declarations: list[str], url: str) -> dict[str, str]:
    """Internal general entities by name (the first declaration binds, as in XML)."""
    entities: dict[str, str] = {}
    for declaration in declarations:
        entity = _ENTITY.fullmatch(declaration)
        if entity is None or entity.group(1):  # external, or a parameter entity
            continue
        name, raw = entity.group(2), entity.group(3) or entity.group(4) or ""
        if name not in entities:
            entities[name] = _entity_value(name, raw, url)
    return entities


def _entity_value(name: str, raw: str, url: str) -> str:
    """An entity's replacement text: character references resolved, nothing re-read."""
    pieces: list[str] = []
    pos = 0
    for ref in _ENTITY_VALUE_REF.finditer(raw):
        decimal, hexadecimal, predefined = ref.groups()
        if not (decimal or hexadecimal or predefined):
            raise EntitiesRefusedError(url, f"entity &{name}; refers to other entities")
        if predefined:
            character = html.unescape(f"&{predefined};")
        else:
            character = _xml_char(int(decimal, 10) if decimal else int(hexadecimal, 16))
        pieces += (raw[pos : ref.start()], character)
        pos = ref.end()
    value = "".join(pieces) + raw[pos:]
    if len(value) > ENTITY_MAX_CHARS:
        raise EntitiesRefusedError(url, f"entity &{name}; declares {len(value)} characters")
    return value


def _xml_char(code: int) -> str:
    """The character numbered `code`; "" for one XML does not allow."""
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF or _NOT_XML_CHARS.match(chr(code)):
        return ""
    return chr(code)


def fix_ampersands(text: str, entities: Mapping[str, str] | None = None, *, url: str = "") -> str:
    """Make every ``&`` well-formed XML; CDATA sections are left alone.

    A bare ``&`` becomes ``&amp;`` and an HTML entity XML does not know (``&nbsp;``,
    ``&eacute;``) becomes a character reference. Otherwise the document is ill-formed and
    feedparser's fallback parser takes over, which reads ``&lang=fr`` in a link as ``〈``.
    A reference to one of `entities` (from `take_internal_subset`) becomes its escaped
    value; any other name becomes text; a character reference XML forbids is dropped.
    """
    fix = _AmpersandFixer(entities or {}, url)
    pieces: list[str] = []
    pos = 0
    while (start := text.find("<![CDATA[", pos)) != -1:
        end = text.find("]]>", start)
        end = len(text) if end == -1 else end + 3
        pieces += (_AMPERSAND.sub(fix, text[pos:start]), text[start:end])
        pos = end
    pieces.append(_AMPERSAND.sub(fix, text[pos:]))
    return "".join(pieces)


class _AmpersandFixer:
    """The well-formed form of each ampersand (see `fix_ampersands`); counts expansion."""

    def __init__(self, entities: Mapping[str, str], url: str) -> None:
        self.escaped = {name: _xml_escape(value) for name, value in entities.items()}
        self.lengths = {name: len(value) for name, value in entities.items()}
        self.url = url
        self.expanded = 0

    def __call__(self, match: re.Match[str]) -> str:
        number, name = match.groups()
        if number:
            return match.group(0) if _is_xml_reference(number) else ""
        if name in _XML_ENTITIES:
            return match.group(0)
        if name is None:
            return "&amp;"
        if name in self.escaped:
            return self.expand(name)
        character = html.entities.html5.get(f"{name};")
        if character:
            return "".join(f"&#{ord(c)};" for c in character)
        return "&amp;" + match.group(0)[1:]  # undeclared: the text "&name;"

    def expand(self, name: str) -> str:
        self.expanded += self.lengths[name]
        if self.expanded > ENTITY_EXPANSION_MAX_CHARS:
            raise EntitiesRefusedError(
                self.url, f"entities expand past {ENTITY_EXPANSION_MAX_CHARS} characters"
            )
        return self.escaped[name]


def _xml_escape(text: str) -> str:
    return "".join(_XML_ESCAPES.get(c, c) for c in text)


def _is_xml_reference(number: str) -> bool:
    """True when a character reference (``#38``, ``#x26``) names a character XML allows."""
    digits = number[2:] if number[1] == "x" else number[1:]
    if len(digits) > 8:  # far past U+10FFFF
        return False
    return _xml_char(int(digits, 16 if number[1] == "x" else 10)) != ""


def drop_misleading_elements(text: str) -> str:
    """Remove elements that mislead feedparser, in one linear pass.

    - media:title / media:description describe a picture, but feedparser files them as the
      entry's title and summary when the entry has none of its own (or has it after them).
    - author-like elements longer than AUTHOR_MAX_CHARS: feedparser's email regex is
      quadratic on them. The relay does not use authors, so nothing is lost. The length is
      everything between the opening tag and the real closing tag: a ``</author>`` inside a
      comment or a CDATA section does not end the element (nor hide its length).

    Comments and CDATA sections are skipped: what looks like a tag in them is text. An
    unclosed element ends the document: it was cut there anyway.
    """
    pieces: list[str] = []
    kept = pos = 0  # text[kept:] is not copied yet; the search resumes at pos
    while (found := _MISLEADING_OR_OPAQUE.search(text, pos)) is not None:
        name = found.group(1)
        if name is None:
            pos = _after_opaque(text, found)
            continue
        close = _closing_tag(text, name, found.end())
        is_author = not name.lower().startswith("media:")
        if close != -1 and is_author and close - found.end() <= AUTHOR_MAX_CHARS:
            pos = close
            continue
        pieces.append(text[kept : found.start()])
        kept = pos = len(text) if close == -1 else (text.find(">", close) + 1 or len(text))
    pieces.append(text[kept:])
    return "".join(pieces)


def _closing_tag(text: str, name: str, pos: int) -> int:
    """Where the element's real closing tag starts (comments and CDATA skipped); -1: none."""
    pattern = re.compile(rf"</{re.escape(name)}(?=[\s>])|<!--|<!\[CDATA\[")
    while (found := pattern.search(text, pos)) is not None:
        if found.group().startswith("</"):
            return found.start()
        pos = _after_opaque(text, found)
    return -1


def _after_opaque(text: str, opening: re.Match[str]) -> int:
    """The position after the comment or CDATA section `opening` starts (the end if open)."""
    end_marker = _OPAQUE_ENDS[opening.group()]
    end = text.find(end_marker, opening.end())
    return len(text) if end == -1 else end + len(end_marker)


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
