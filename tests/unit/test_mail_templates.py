"""The mail templates: every kind renders in every language from what the services store."""

from __future__ import annotations

from typing import Any

import pytest
from jinja2 import UndefinedError

from keyhouse.mail.render import KINDS, LANGUAGES, render_mail
from keyhouse.services.invites import NOT_KEPT, NOTICE_KINDS, redacted

CONTEXT: dict[str, Any] = {  # the keys of services.invites.mail_context
    "user_name": "Anna",
    "account_name": "Owner",
    "lock_name": "Front Door",
    "key_name": "December",
    "key_type": 0,
    "remote_allowed": False,
    "timezone": "Europe/Vienna",
    "validity": "any time, no restrictions",
}
SECRET = "s" * 43
SECRETS: dict[str, dict[str, Any]] = {
    "invite": {"link_secret": SECRET, "guest_url": f"http://127.0.0.1:8080/guest/{SECRET}"},
    "keypad_code": {
        "link_secret": SECRET,
        "guest_url": f"http://127.0.0.1:8080/guest/{SECRET}",
        "keypad_code": 345678,
    },
}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("key_type", [0, 13])
def test_every_kind_renders_in_every_language(kind: str, language: str, key_type: int) -> None:
    mail = render_mail(kind, language, {**CONTEXT, "key_type": key_type, **SECRETS.get(kind, {})})
    assert "Front Door" in mail.subject and "December" in mail.subject
    assert "\n" not in mail.subject
    assert mail.text.startswith(("Hello Anna,\n", "Guten Tag Anna,\n"))
    assert f'<html lang="{language}">' in mail.html
    for part in (mail.subject, mail.text, mail.html):
        assert "{{" not in part and "{%" not in part
    if kind in SECRETS:
        assert SECRETS[kind]["guest_url"] in mail.text
        assert f'href="{SECRETS[kind]["guest_url"]}"' in mail.html
    else:
        assert SECRET not in mail.text + mail.html  # a notice carries no link


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", NOTICE_KINDS)
def test_notices_mention_the_keypad_code_only_for_keypad_codes(kind: str, language: str) -> None:
    word = {"en": "keypad code", "de": "Tastaturcode"}[language]
    app = render_mail(kind, language, {**CONTEXT, "key_type": 0})
    code = render_mail(kind, language, {**CONTEXT, "key_type": 13})
    assert word not in app.text and word not in app.html
    assert word in code.text and word in code.html


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_the_kept_copy_renders_with_the_secrets_redacted(kind: str, language: str) -> None:
    secrets_ = {k: v for k, v in SECRETS[kind].items() if k != "guest_url"}
    kept = render_mail(kind, language, {**CONTEXT, **redacted(secrets_)})
    assert SECRET not in kept.text and "345678" not in kept.text
    assert NOT_KEPT in kept.text


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_an_invite_without_its_link_does_not_render(kind: str) -> None:
    with pytest.raises(UndefinedError):
        render_mail(kind, "en", CONTEXT)
