"""keyhouse sim …: act on virtual locks through a running server (the emulator API)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

sim_app = typer.Typer(
    help="Act as the lock or as a person at the door, through a running Keyhouse server.",
    no_args_is_help=True,
)

UrlOption = Annotated[
    str,
    typer.Option("--url", envvar="KEYHOUSE_URL", help="The server's base URL"),
]
TokenOption = Annotated[
    str,
    typer.Option("--token", envvar="KEYHOUSE_TOKEN", help="An API token with the scope 'emulator'"),
]
DEFAULT_URL = "http://127.0.0.1:8080"


def _call(url: str, token: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    import httpx

    try:
        answer = httpx.post(
            f"{url.rstrip('/')}{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        typer.echo(f"error: can't reach Keyhouse at {url}: {exc}", err=True)
        raise typer.Exit(1) from None
    try:
        data = answer.json()
    except ValueError:
        data = {"detailMessage": answer.text}
    if answer.status_code >= 400:
        typer.echo(f"error: {data.get('detailMessage', answer.text)}", err=True)
        raise typer.Exit(4 if answer.status_code == 401 else 1)
    return data


def _set_online(lock: int, online: bool, url: str, token: str) -> None:
    state = _call(url, token, f"/emulator/smartlock/{lock}", {"online": online})
    word = "online" if state["online"] else "offline"
    typer.echo(f"smartlock {lock} is {word}; {state['pendingOperations']} change(s) queued for it")


@sim_app.command()
def online(
    lock: Annotated[int, typer.Argument(help="The smartlockId")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = "",
) -> None:
    """Bring a virtual lock online: its queued changes apply, in order."""
    _set_online(lock, True, url, token)


@sim_app.command()
def offline(
    lock: Annotated[int, typer.Argument(help="The smartlockId")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = "",
) -> None:
    """Take a virtual lock offline: changes queue until it is back."""
    _set_online(lock, False, url, token)


def _door(result: dict[str, Any]) -> None:
    typer.echo(f"{'opened' if result['opened'] else 'refused'}: {result['reason']}")
    if not result["opened"]:
        raise typer.Exit(3)


@sim_app.command()
def keypad(
    lock: Annotated[int, typer.Argument(help="The smartlockId")],
    code: Annotated[int, typer.Argument(help="The 6-digit code typed")],
    at: Annotated[str | None, typer.Option(help="When, RFC 3339 (default now)")] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = "",
) -> None:
    """Type a code on the lock's keypad. Exit code 0 opened, 3 refused."""
    body: dict[str, Any] = {"code": code}
    if at:
        body["at"] = at
    _door(_call(url, token, f"/emulator/smartlock/{lock}/keypad", body))


@sim_app.command()
def app(
    lock: Annotated[int, typer.Argument(help="The smartlockId")],
    key: Annotated[int, typer.Argument(help="The key's slot on the lock (its authId)")],
    at: Annotated[str | None, typer.Option(help="When, RFC 3339 (default now)")] = None,
    action: Annotated[int, typer.Option(help="1 unlock, 2 lock, 3 unlatch")] = 1,
    remote: Annotated[bool, typer.Option("--remote", help="Use it remotely")] = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = "",
) -> None:
    """Use an app key at the door (or --remote). Exit code 0 opened, 3 refused."""
    body: dict[str, Any] = {"authId": key, "action": action, "remote": remote}
    if at:
        body["at"] = at
    _door(_call(url, token, f"/emulator/smartlock/{lock}/app", body))


@sim_app.command()
def button(
    lock: Annotated[int, typer.Argument(help="The smartlockId")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = "",
) -> None:
    """Press the lock's button."""
    result = _call(url, token, f"/emulator/smartlock/{lock}/button")
    typer.echo(result["reason"])
