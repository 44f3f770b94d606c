"""keyhouse invite: a user and a key in one command, or a whole CSV of guests."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add ``keyhouse invite`` to the ``keyhouse`` app."""
