"""The guest page's HTML templates and its one stylesheet (no scripts, no build step)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("keyhouse.web", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, **context: Any) -> str:
    """A page from ``templates/<template>``; every value is HTML-escaped."""
    return _environment().get_template(template).render(context)


@cache
def stylesheet() -> bytes:
    """The page's CSS (served at /guest/assets/guest.css)."""
    return files("keyhouse.web").joinpath("static/guest.css").read_bytes()
