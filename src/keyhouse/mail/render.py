"""Render a mail of one kind, in one language, from its template files.

Each kind has three templates per language in ``templates/<language>/``:
``<kind>.subject.txt``, ``<kind>.txt`` and ``<kind>.html``. A language without templates falls
back to English.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

LANGUAGES = ("en", "de")
DEFAULT_LANGUAGE = "en"
KINDS = ("invite", "keypad_code", "key_disabled", "key_deleted")


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("keyhouse.mail", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def mail_language(language: str | None) -> str:
    """The language a mail is written in: the user's, if Keyhouse has it, else English."""
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def render_mail(kind: str, language: str | None, context: dict[str, Any]) -> RenderedMail:
    """The subject, text part and HTML part of a mail of ``kind`` in ``language``."""
    if kind not in KINDS:
        raise ValueError(f"no mail templates for kind {kind!r}: use one of {', '.join(KINDS)}")
    env = _environment()
    folder = mail_language(language)
    subject = env.get_template(f"{folder}/{kind}.subject.txt").render(context)
    return RenderedMail(
        subject=" ".join(subject.split()),
        text=env.get_template(f"{folder}/{kind}.txt").render(context),
        html=env.get_template(f"{folder}/{kind}.html").render(context),
    )
