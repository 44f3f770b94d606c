"""The guest page's languages (keyhouse.web.words): the browser's choice from Accept-Language,
and the catalogue that holds every word of the page."""

from __future__ import annotations

import string

import pytest

from keyhouse.web.words import WORDS, browser_language, page_language, say


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("de-AT,de;q=0.9,en;q=0.5", "de"),
        ("de", "de"),
        ("DE-de", "de"),
        ("de-CH", "de"),
        ("en-US", "en"),
        ("en-US,en;q=0.9,de;q=0.8", "en"),
        ("en;q=0.5, de;q=0.8", "de"),  # the q values count, not the order
        ("de, en", "de"),  # equal q: the earlier one
        ("en, de", "en"),
        ("fr-FR,fr;q=0.9,de;q=0.7", "de"),  # German over no English at all
        ("fr-FR,fr;q=0.9,en;q=0.8,de;q=0.7", "en"),
        ("fr-FR,fr;q=0.9", "en"),  # neither: English
        ("de;q=0, en;q=0.1", "en"),  # q=0: not wanted
        ("de;q=0", "en"),
        ("*", "en"),
        ("*, de;q=0.5", "de"),
        (" de-AT ; q=0.9 , en ; q=0.8 ", "de"),
        ("de;q=abc, en;q=0.3", "en"),  # a malformed range is skipped
        ("de;q=2, en", "en"),  # q beyond 1 is malformed
        ("deutsch, en", "en"),  # not the tag "de"
        ("", "en"),
        (None, "en"),
        (",,;,", "en"),
    ],
)
def test_the_browser_language_is_de_only_when_german_is_preferred_over_english(
    header: str | None, expected: str
) -> None:
    assert browser_language(header) == expected


def test_a_huge_header_is_cut_short() -> None:
    assert browser_language("fr;q=0.9," * 10_000 + "de") == "en"
    assert browser_language("de," + "fr;q=0.9," * 10_000) == "de"


@pytest.mark.parametrize(
    ("language", "expected"),
    [("de", "de"), ("en", "en"), ("fr", "en"), (None, "en"), ("", "en"), ("DE", "en")],
)
def test_the_page_speaks_de_or_en_else_english(language: str | None, expected: str) -> None:
    assert page_language(language) == expected


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_language_has_every_word() -> None:
    assert set(WORDS) == {"en", "de"}
    assert set(WORDS["de"]) == set(WORDS["en"])
    for key, english in WORDS["en"].items():
        assert WORDS["de"][key] != english, key


@pytest.mark.parametrize("key", sorted(WORDS["en"]))
def test_german_words_need_no_value_the_english_ones_do_not_get(key: str) -> None:
    # the callers fill the English placeholders; German may leave some out, never add one
    assert _placeholders(WORDS["de"][key]) <= _placeholders(WORDS["en"][key])


def test_say_fills_the_placeholders_in_the_language_and_falls_back_to_english() -> None:
    assert say("en", "opened", lock="Flat 2") == "Done: Flat 2 is unlocked."
    assert say("de", "opened", lock="Flat 2") == "Erledigt: Das Schloss „Flat 2“ ist aufgesperrt."
    assert say("fr", "open") == "Open"
    assert say("de", "open") == "Öffnen"
    with pytest.raises(KeyError):
        say("en", "no such word")
