"""keyhouse sim …: act on virtual locks through a running server (the emulator API, via the SDK).

Locks are named by name or smartlockId, keys by id or name (or their slot, the authId), like
everywhere else in the CLI; times without a zone are the lock's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keyhouse.cli.common import (
    EXIT_REFUSED,
    EXIT_USAGE,
    TokenOption,
    UrlOption,
    api,
    fail,
    find_key,
    find_lock,
    lock_timezone,
)

if TYPE_CHECKING:
    from datetime import datetime

    from keyhouse.client import Client, Smartlock, SmartlockAuth

sim_app = typer.Typer(
    help="Act as the lock or as a person at the door, through a running Keyhouse server.",
    no_args_is_help=True,
)

LockArgument = Annotated[str, typer.Argument(help="The lock: its name or smartlockId")]
AtOption = Annotated[
    str | None,
    typer.Option(
        help="When: a date and time, e.g. 2026-12-07T09:00 (the lock's time) or "
        "2026-12-07T09:00:00Z (default now)"
    ),
]


def _at(lock: Smartlock, at: str | None) -> datetime | None:
    from keyhouse.rules.cli_input import parse_at

    if at is None:
        return None
    try:
        return parse_at(at, lock_timezone(lock))
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)


def _set_online(lock: str, online: bool, url: str | None, token: str | None) -> None:
    with api(url, token) as client:
        found = find_lock(client, lock)
        queued = client.emulator_state(found.smartlock_id).pending_operations
        state = client.set_emulator(found.smartlock_id, online=online)
    name = f"{found.name} ({found.smartlock_id})"
    if not state.online:
        waiting = f" ({queued} already queued)" if queued else ""
        typer.echo(f"{name} is offline: changes queue until it is back online{waiting}")
        return
    applied = max(queued - state.pending_operations, 0)
    left = f", {state.pending_operations} still queued" if state.pending_operations else ""
    typer.echo(f"{name} is online; {applied} queued change(s) applied{left}")


def _door(
    lock: str, url: str | None, token: str | None, attempt: Callable[[Client, Smartlock], Any]
) -> None:
    with api(url, token) as client:
        result = attempt(client, find_lock(client, lock))
    word = "opened" if result.opened else "refused"
    reason = result.reason or ""
    # The server's reason may already begin with its verdict ("opened: inside the window").
    typer.echo(reason if reason.startswith(("opened", "refused")) else f"{word}: {reason}")
    if not result.opened:
        raise typer.Exit(EXIT_REFUSED)


@sim_app.command()
def online(lock: LockArgument, url: UrlOption = None, token: TokenOption = None) -> None:
    """Bring a virtual lock online: its queued changes apply, in order."""
    _set_online(lock, True, url, token)


@sim_app.command()
def offline(lock: LockArgument, url: UrlOption = None, token: TokenOption = None) -> None:
    """Take a virtual lock offline: changes queue until it is back."""
    _set_online(lock, False, url, token)


@sim_app.command()
def keypad(
    lock: LockArgument,
    code: Annotated[str, typer.Argument(help="The digits typed, e.g. 345678")],
    at: AtOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Type a code on the lock's keypad. Exit code 0 opened, 3 refused."""
    typed = code.strip()
    if not typed.isdigit() or len(typed) > 6:
        fail(f"code {code!r} is not valid: a keypad takes up to 6 digits, e.g. 345678", 2)

    def attempt(client: Client, found: Smartlock) -> Any:
        return client.keypad(found.smartlock_id, int(typed), at=_at(found, at))

    _door(lock, url, token, attempt)


def _app_key(client: Client, lock: Smartlock, text: str) -> SmartlockAuth:
    """A key by id or name, or by its slot on the lock (authId)."""
    if text.isdigit():
        slots = [k for k in client.list_keys(lock.smartlock_id) if k.auth_id == int(text)]
        if slots and not any(k.name == text for k in client.list_keys(lock.smartlock_id)):
            return slots[0]
    return find_key(client, lock, text)


@sim_app.command()
def app(
    lock: LockArgument,
    key: Annotated[
        str, typer.Argument(help="The app key: its id or name (or its slot, the authId)")
    ],
    at: AtOption = None,
    action: Annotated[int, typer.Option(help="1 unlock, 2 lock, 3 unlatch")] = 1,
    remote: Annotated[bool, typer.Option("--remote", help="Use it remotely")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Use an app key at the door (or --remote). Exit code 0 opened, 3 refused."""

    def attempt(client: Client, found: Smartlock) -> Any:
        when = _at(found, at)
        chosen = _app_key(client, found, key)
        if chosen.auth_id is None:
            fail(
                f"key {chosen.name!r} ({chosen.id}) has no slot on {found.name} yet (syncState "
                f"{chosen.sync_state}): bring the lock online with 'keyhouse sim online "
                f"{found.smartlock_id}', then try again"
            )
        return client.app_key(
            found.smartlock_id, chosen.auth_id, action=action, remote=remote, at=when
        )

    _door(lock, url, token, attempt)


@sim_app.command()
def button(lock: LockArgument, url: UrlOption = None, token: TokenOption = None) -> None:
    """Press the lock's button."""
    with api(url, token) as client:
        typer.echo(client.button(find_lock(client, lock).smartlock_id).reason)
