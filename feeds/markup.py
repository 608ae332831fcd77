"""Bound hostile HTML before an HTML5 parser (nh3) sees it, and read HTML as text without one.

html5ever, under nh3, is linear on ordinary markup but not on a stranger's: its cost grows with
nesting depth times tag count (50,000 nested ``<div>`` took 20–28 s) and with the square of
one tag's attribute count. `bound_markup` re-writes a fragment with many tags (or one huge
tag), in one linear pass, as markup that cannot trigger either: at most `MAX_DEPTH` open
elements, at most `MAX_ATTRIBUTES` attributes a tag, every element closed explicitly, text and
attribute values re-escaped, comments and the content of script-like elements dropped (every
caller drops them anyway). Its own reading of tags is simpler than HTML5's; that cannot make
the output unsafe, because nh3 only ever parses what this module wrote. Markup deeper than the
bound loses its tags, never its text.

`plain_text` reads a fragment as text with a few regular expressions, linear whatever the
markup: comments and hidden elements (scripts, styles…) go, block tags become spaces; only
the first TEXT_SCAN_CHARS of what remains are read.

`HtmlBudget` is one document's allowance: characters cleaned by nh3 and tags re-written here.
Past it, fields are read with `plain_text`.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

MAX_DEPTH = 200  # open elements; real posts stay well under 50
MAX_ATTRIBUTES = 32  # per tag: html5ever checks duplicates pairwise
BOUND_OVER_TAGS = 500  # below, nh3 costs at most ≈4× an ordinary post, whatever the shape
DOCUMENT_HTML_CHARS = 2_000_000  # nh3: ≈0.25 s of ordinary HTML, ≈1.5 s of the worst kind
DOCUMENT_BOUND_TAGS = 20_000  # tags re-written in Python: ≈0.02 s (0.1 s on a busy machine)
TEXT_SCAN_CHARS = 50_000  # plain_text reads this much markup (a summary needs far less)

# Elements whose text is not content. The rawtext ones (textarea, title, xmp...) would
# otherwise come out as text that looks like markup ("<script>" inside <textarea>).
HIDDEN_CONTENT_TAGS = frozenset(
    {"script", "style", "template", "textarea", "title", "xmp", "noscript"}
    | {"iframe", "noembed", "noframes", "object", "svg", "math", "select"}
)
BLOCK_TAGS = frozenset(
    {"p", "div", "br", "hr", "li", "ul", "ol", "dl", "dt", "dd", "table", "tr", "td", "th"}
    | {"h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "figure", "figcaption"}
    | {"section", "article", "header", "footer", "aside", "nav", "main", "address"}
)

_MARKUP = re.compile(r"""<(?:(!--)|(/?)([A-Za-z][\w:-]*)((?:[^<>"']|"[^"]*"|'[^']*')*)>|[!?/])""")
_LONG_TAG = re.compile(r"<[A-Za-z][^<>]{2000}")  # room for over MAX_ATTRIBUTES attributes
_ATTRIBUTE = re.compile(r"""([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'<>]+)))?""")
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z_:][\w:.-]*")
# plain_text: each pattern either matches where it starts or fails at the next "<" or ">",
# and an unclosed comment or hidden element runs to the end (as in HTML5): linear.
_COMMENT = re.compile(r"<!--(?:[^-]|-(?!->))*(?:-->|\Z)")
_HIDDEN_INITIALS = "".join(sorted({name[0] for name in HIDDEN_CONTENT_TAGS}))
_HIDDEN_ELEMENT = re.compile(  # the lookahead spares most "<" the alternation
    rf"<(?=[{_HIDDEN_INITIALS}])({'|'.join(sorted(HIDDEN_CONTENT_TAGS))})\b[^<>]*>"
    r"(?:(?!</\1)[\s\S])*(?:</\1[^<>]*>|\Z)",
    re.I,
)
_BLOCK_TAG = re.compile(rf"</?(?:{'|'.join(sorted(BLOCK_TAGS))})\b[^<>]*>", re.I)
_ANY_TAG = re.compile(r"<[A-Za-z/!?][^<>]*>")
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param"}
    | {"source", "track", "wbr", "basefont", "bgsound", "frame", "keygen"}
)
# Elements whose content HTML5 reads as text: dropped here with their content.
_RAW_TEXT = frozenset(
    {"script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes"}
    | {"noscript", "plaintext"}
)
_RAW_TEXT_ENDS = {name: re.compile(f"</{name}", re.I) for name in _RAW_TEXT}
_CLOSE_SAME = frozenset({"p", "li", "dd", "dt", "option"})  # <li> closes an open <li>


@dataclass
class HtmlBudget:
    """What one document may still spend on HTML: characters for nh3, tags to re-write."""

    chars: int = DOCUMENT_HTML_CHARS
    tags: int = DOCUMENT_BOUND_TAGS

    def take(self, chars: int, tags: int = 0) -> bool:
        """Spend, or refuse (spending nothing) when this would go over the allowance."""
        if chars > self.chars or tags > self.tags:
            return False
        self.chars -= chars
        self.tags -= tags
        return True


def needs_bounding(fragment: str) -> bool:
    """True when a fragment's shape could cost nh3 more than its length does."""
    return fragment.count("<") > BOUND_OVER_TAGS or _LONG_TAG.search(fragment) is not None


def plain_text(fragment: str) -> str:
    """Text of an HTML fragment in linear time, entities decoded, blocks as spaces."""
    text = _HIDDEN_ELEMENT.sub(" ", _COMMENT.sub("", fragment))[:TEXT_SCAN_CHARS]
    if text.rfind("<") > text.rfind(">"):  # a tag cut by the window: not text
        text = text[: text.rfind("<")]
    return html.unescape(_ANY_TAG.sub("", _BLOCK_TAG.sub(" ", text)))


def bound_markup(fragment: str) -> str:
    """`fragment` re-written so that nh3 parses it in linear time (see the module docstring).

    One loop, locals only: it runs once per tag of a hostile fragment.
    """
    out: list[str] = []
    stack: list[str] = []
    open_counts: dict[str, int] = {}
    pos = 0
    while (found := _MARKUP.search(fragment, pos)) is not None:
        if found.start() > pos:
            out.append(_text(fragment[pos : found.start()]))
        pos = found.end()
        comment, closing, name, attributes = found.groups()
        if name is None:  # a comment, or <!DOCTYPE …>, <?…>, </ …> (bogus comments)
            pos = _after(fragment, "-->" if comment else ">", pos)
            continue
        name = name.lower()
        if closing or (name in _CLOSE_SAME and stack and stack[-1] == name):
            _close(name, stack, open_counts, out)
            if closing:
                continue
        if name in _RAW_TEXT:
            end = _RAW_TEXT_ENDS[name].search(fragment, pos)
            pos = len(fragment) if end is None else _after(fragment, ">", end.end())
        elif name in _VOID:
            out.append(f"<{name}{_attributes(attributes)}>")
        elif len(stack) >= MAX_DEPTH:
            out.append(" ")  # too deep: the tag goes, its text stays
        else:
            out.append(f"<{name}{_attributes(attributes)}>")
            stack.append(name)
            open_counts[name] = open_counts.get(name, 0) + 1
    out.append(_text(fragment[pos:]))
    out.extend(f"</{name}>" for name in reversed(stack))
    return "".join(out)


def _text(raw: str) -> str:
    return html.escape(html.unescape(raw), quote=False)


def _after(fragment: str, marker: str, pos: int) -> int:
    """The position after the next `marker`; the end of the fragment without one."""
    end = fragment.find(marker, pos)
    return len(fragment) if end == -1 else end + len(marker)


def _close(name: str, stack: list[str], open_counts: dict[str, int], out: list[str]) -> None:
    """Close `name` and everything opened inside it; a stray closing tag is dropped."""
    if not open_counts.get(name):
        out.append(" ")
        return
    while stack:
        top = stack.pop()
        open_counts[top] -= 1
        out.append(f"</{top}>")
        if top == name:
            return


def _attributes(raw: str) -> str:
    """The first MAX_ATTRIBUTES well-named attributes, each once, values re-escaped."""
    if not raw.strip():
        return ""
    seen: dict[str, str] = {}
    for match in _ATTRIBUTE.finditer(raw):
        name = match.group(1).lower()
        if name in seen or not _ATTRIBUTE_NAME.fullmatch(name):
            continue
        value = next((v for v in match.group(2, 3, 4) if v is not None), "")
        seen[name] = html.escape(html.unescape(value), quote=True)
        if len(seen) == MAX_ATTRIBUTES:
            break
    return "".join(f' {name}="{value}"' for name, value in seen.items())
