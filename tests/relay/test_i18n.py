"""Every message exists in French and English, with the same placeholders."""

from __future__ import annotations

import string

import pytest

from relay.i18n import catalogue, language_for, text


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_both_catalogues_have_the_same_keys() -> None:
    assert set(catalogue("fr")) == set(catalogue("en"))


@pytest.mark.parametrize("key", sorted(catalogue("fr")))
def test_translations_use_the_same_placeholders(key: str) -> None:
    assert placeholders(catalogue("fr")[key]) == placeholders(catalogue("en")[key])


@pytest.mark.parametrize(
    ("code", "lang"),
    [
        ("fr", "fr"),
        ("fr-CA", "fr"),
        ("FR", "fr"),
        ("en", "en"),
        ("de", "en"),
        (None, "en"),
        ("", "en"),
    ],
)
def test_language_is_french_when_the_code_starts_with_fr(code: str | None, lang: str) -> None:
    assert language_for(code) == lang


def test_messages_are_formatted_in_the_asked_language() -> None:
    assert "n'est pas une adresse web valide" in text("fr", "error.invalid_url", url="x")
    assert "is not a valid web address" in text("en", "error.invalid_url", url="x")


def _error_codes() -> set[str]:
    import relay.parsing  # noqa: F401  (its parse errors join the tree)
    from feeds.errors import FeedError

    found, todo = set(), [FeedError]
    while todo:
        cls = todo.pop()
        found.add(cls.code)
        todo.extend(cls.__subclasses__())
    return found - {"error"}


@pytest.mark.parametrize("code", sorted(_error_codes()))
@pytest.mark.parametrize("lang", ["fr", "en"])
def test_every_feed_error_has_a_sentence_in_both_languages(code: str, lang: str) -> None:
    assert f"error.{code}" in catalogue(lang)
