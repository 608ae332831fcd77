"""A strict checker for Telegram HTML, used by the rendering tests: what Telegram would reject."""

from __future__ import annotations

import re
from html.parser import HTMLParser

ALLOWED = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del",
    "tg-spoiler", "a", "code", "pre", "blockquote",
}  # fmt: skip
# Telegram knows only these named entities (numeric ones are fine).
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED:
            self.problems.append(f"tag <{tag}> not allowed")
        names = [name for name, _ in attrs]
        if names not in ([], ["href"]) or (names and tag != "a"):
            self.problems.append(f"attributes {names} on <{tag}>")
        if tag == "a":
            href = dict(attrs).get("href") or ""
            if not href.startswith(("http://", "https://")):
                self.problems.append(f"href {href!r}")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.problems.append(f"self-closing <{tag}/>")


def telegram_html_problems(markup: str) -> list[str]:
    """Why Telegram would answer "can't parse entities" (empty list: it would not)."""
    checker = _Checker()
    checker.feed(markup)
    checker.close()
    problems = checker.problems
    if checker.stack:
        problems.append(f"unclosed {checker.stack}")
    for match in re.finditer("&", markup):
        if not _ENTITY.match(markup, match.start()):
            problems.append(
                f"bare or unknown entity at {markup[match.start() : match.start() + 8]!r}"
            )
    return problems
