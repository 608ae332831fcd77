"""Bounding hostile HTML before nh3, the linear plain-text reader, and the document budget."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeds.markup import (
    DOCUMENT_HTML_CHARS,
    MAX_ATTRIBUTES,
    MAX_DEPTH,
    HtmlBudget,
    bound_markup,
    needs_bounding,
    plain_text,
)
from feeds.normalize import first_image_in_html, html_to_text, sanitize_html

_OUTPUT_TAG = re.compile(r"<(/?)([a-z][\w:-]*)((?: [^\s=]+=\"[^\"]*\")*)>")
_VOID = {"br", "img", "hr", "input", "meta", "link", "wbr", "area", "base", "col", "embed"}
_VOID |= {"param", "source", "track", "basefont", "bgsound", "frame", "keygen"}


def depth_and_balance(markup: str) -> tuple[int, list[str]]:
    """Deepest nesting of bound_markup's output, and the elements it leaves open."""
    stack: list[str] = []
    deepest = 0
    for closing, name, attributes in _OUTPUT_TAG.findall(markup):
        assert attributes.count('="') <= MAX_ATTRIBUTES
        if closing:
            assert stack.pop() == name  # properly nested: every close matches the last open
        elif name not in _VOID:
            stack.append(name)
            deepest = max(deepest, len(stack))
    return deepest, stack


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("<p>a<li>b<li>c</p>", "<p>a<li>b</li><li>c</li></p>"),
        ("<div><b>x</div>y", "<div><b>x</b></div>y"),
        ("a</span>b", "a b"),
        ("<DIV Class='x' ID=y checked>t</div>", '<div class="x" id="y" checked="">t</div>'),
        ("<div title='a>b'>t</div>", '<div title="a&gt;b">t</div>'),
        ("<script>if (a<b) alert(1)</script>t", "t"),
        ("<STYLE>p{}</Style >t<textarea><b>", "t"),
        ("<!-- <div> -->t<!-- unclosed", "t"),
        ("<!DOCTYPE html><?php x ?></ >t", "t"),
        ("1 < 2 & 3 &lt; 4 &amp;amp;", "1 &lt; 2 &amp; 3 &lt; 4 &amp;amp;"),
        ("<br/><img src=x.jpg>", '<br><img src="x.jpg">'),
        ("<a href='/x' " + "data-a=1 " * 3 + ">", '<a href="/x" data-a="1"></a>'),
    ],
)
def test_bound_markup(fragment: str, expected: str) -> None:
    assert bound_markup(fragment) == expected


# Shapes chosen to fool a naive depth count: closes that HTML5 ignores, implied elements,
# unclosed formatting elements, a quote that hides a tag from a simple tokenizer; each about
# 100,000 characters (one field may hand nh3 200,000), thousands of times too deep for nh3.
HOSTILE_SHAPES = {
    "divs": "<div>" * 20_000,
    "unclosed formatting": "".join(f"<b id={i}>" for i in range(10_000)),
    "ignored closes": "<div></p></span>" * 6_000,
    "tables": "<table><tr><td>" * 6_000,
    "lists": "<li><ul></li>" * 7_000,
    "blocks closing formatting": "<div><b id=x></div>" * 5_000,
    "quote tricks": "<br a=x'>" + "<div>" * 20_000 + "'>",
    "attributes": "<div " + " ".join(f"a{i}=1" for i in range(15_000)) + ">x</div>",
}


@pytest.mark.parametrize("fragment", HOSTILE_SHAPES.values(), ids=HOSTILE_SHAPES.keys())
def test_hostile_shapes_are_bounded_and_cheap(fragment: str) -> None:
    started = time.process_time()
    bounded = bound_markup(fragment)
    sanitize_html(fragment, "https://shop.example/")  # bound, then nh3 (no budget given)
    assert time.process_time() - started < 1.0
    assert needs_bounding(fragment)
    deepest, left_open = depth_and_balance(bounded)
    assert deepest <= MAX_DEPTH
    assert left_open == []


@given(st.lists(st.sampled_from(["<div>", "</div>", "<b>", "</b>", "<p>", "</p>", "x", "<li>"])))
def test_bound_markup_is_balanced_and_shallow(pieces: list[str]) -> None:
    deepest, left_open = depth_and_balance(bound_markup("".join(pieces * 60)))
    assert deepest <= MAX_DEPTH
    assert left_open == []


@given(st.text(max_size=300))
def test_bound_markup_never_fails(fragment: str) -> None:
    deepest, left_open = depth_and_balance(bound_markup(fragment))
    assert deepest <= MAX_DEPTH
    assert left_open == []


def test_deep_markup_loses_tags_not_text() -> None:
    fragment = "<div>" * 1000 + "<p>deep <em>text</em></p>" + "</div>" * 1000 + "after"
    assert html_to_text(fragment) == "deep text after"
    assert "deep" in (sanitize_html(fragment, None) or "")


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("<p>Hé<b>llo</b></p><p>world</p>", " Héllo  world "),
        ("a<script>var p = '<p>'</script>b<STYLE>x</style>c", "a b c"),
        ("a<!-- b <p> -->c<!-- d", "ac"),
        ("caf&eacute; &amp;amp; <br>x", "café &amp;  x"),
        ("a<script>never closed <p>b", "a "),
        ("text then <img src='data:" + "A" * 60_000, "text then "),  # a tag cut by the window
    ],
)
def test_plain_text(fragment: str, expected: str) -> None:
    assert plain_text(fragment) == expected


@pytest.mark.parametrize("fragment", ["<script>" * 40_000, "<!--" * 40_000, "<a '" * 40_000])
def test_plain_text_is_linear(fragment: str) -> None:
    started = time.process_time()
    plain_text(fragment)
    assert time.process_time() - started < 0.5


def test_the_budget_is_spent_then_refused() -> None:
    budget = HtmlBudget(chars=10, tags=2)
    assert budget.take(6, 1)
    assert not budget.take(6)  # would go over: refused, nothing spent
    assert budget.take(4, 1)
    assert (budget.chars, budget.tags) == (0, 0)
    assert HtmlBudget().chars == DOCUMENT_HTML_CHARS


def test_a_spent_budget_falls_back_to_plain_text() -> None:
    fragment = '<p>Hello <img src="https://shop.example/i.jpg"> <b>world</b></p>'
    spent = HtmlBudget(chars=0, tags=0)
    assert html_to_text(fragment, budget=spent) == html_to_text(fragment) == "Hello world"
    assert sanitize_html(fragment, None, budget=spent) is None
    assert first_image_in_html(fragment, None, budget=spent) is None
    assert first_image_in_html(fragment, None) == "https://shop.example/i.jpg"
