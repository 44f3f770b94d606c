"""keyhouse sim …: act on virtual locks through a running server (the emulator API, via the SDK)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keyhouse.cli.common import EXIT_REFUSED, TokenOption, UrlOption, api

if TYPE_CHECKING:
    from keyhouse.client import Client

sim_app = typer.Typer(
    help="Act as the lock or as a person at the door, through a running Keyhouse server.",
    no_args_is_help=True,
)

LockArgument = Annotated[int, typer.Argument(help="The smartlockId")]
AtOption = Annotated[str | None, typer.Option(help="When, RFC 3339 (default now)")]


def _set_online(lock: int, online: bool, url: str | None, token: str | None) -> None:
    with api(url, token) as client:
        state = client.set_emulator(lock, online=online)
    word = "online" if state.online else "offline"
    typer.echo(f"smartlock {lock} is {word}; {state.pending_operations} change(s) queued for it")


def _door(url: str | None, token: str | None, attempt: Callable[[Client], Any]) -> None:
    with api(url, token) as client:
        result = attempt(client)
    typer.echo(f"{'opened' if result.opened else 'refused'}: {result.reason}")
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
    code: Annotated[int, typer.Argument(help="The 6-digit code typed")],
    at: AtOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Type a code on the lock's keypad. Exit code 0 opened, 3 refused."""
    _door(url, token, lambda client: client.keypad(lock, code, at=at))


@sim_app.command()
def app(
    lock: LockArgument,
    key: Annotated[int, typer.Argument(help="The key's slot on the lock (its authId)")],
    at: AtOption = None,
    action: Annotated[int, typer.Option(help="1 unlock, 2 lock, 3 unlatch")] = 1,
    remote: Annotated[bool, typer.Option("--remote", help="Use it remotely")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Use an app key at the door (or --remote). Exit code 0 opened, 3 refused."""
    _door(url, token, lambda client: client.app_key(lock, key, action=action, remote=remote, at=at))


@sim_app.command()
def button(lock: LockArgument, url: UrlOption = None, token: TokenOption = None) -> None:
    """Press the lock's button."""
    with api(url, token) as client:
        typer.echo(client.button(lock).reason)
