"""Client commands: login, locks, users, keys, log, lock, unlock (through the SDK)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``keyhouse`` app."""
