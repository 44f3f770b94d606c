"""What the client commands share: the SDK client, one-sentence errors and exit codes, output as
Rich tables or JSON, and naming locks, users and keys by name as well as by id."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from keyhouse.client import AccountUser, Client, Smartlock, SmartlockAuth

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_REFUSED, EXIT_AUTH = 0, 1, 2, 3, 4

UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="The server's base URL (else KEYHOUSE_URL, else the profile)"),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", help="An API token (else KEYHOUSE_TOKEN, else the profile)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts")]


class Profile:
    """The --profile given to `keyhouse` (None: KEYHOUSE_PROFILE or the file's default)."""

    name: str | None = None


def fail(message: str, code: int = EXIT_API) -> NoReturn:
    """End the command with one sentence on stderr."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def api(url: str | None = None, token: str | None = None) -> Iterator[Client]:
    """An SDK client; an API error ends the command with its message and exit code."""
    from keyhouse.client import (
        AuthError,
        Client,
        ConnectionFailed,
        InvalidArgument,
        KeyhouseAPIError,
        KeyhouseClientError,
        MissingToken,
    )

    try:
        with Client(token=token, base_url=url, profile=Profile.name) as client:
            yield client
    except AuthError as exc:
        fail(f"{exc.message} (log in with 'keyhouse login --url URL --token TOKEN')", EXIT_AUTH)
    except InvalidArgument as exc:
        if exc.field == "base_url":  # from --url, KEYHOUSE_URL or the profile
            fail(
                exc.message.replace("base_url", "the server URL", 1)
                + " (give it with --url, KEYHOUSE_URL or 'keyhouse login')",
                EXIT_USAGE,
            )
        fail(exc.message, EXIT_USAGE)
    except KeyhouseAPIError as exc:
        fail(exc.message)
    except MissingToken:
        fail(NO_TOKEN, EXIT_AUTH)
    except ConnectionFailed as exc:
        fail(unreachable(exc.url or url or "", exc.reason))
    except KeyhouseClientError as exc:
        fail(str(exc))


NO_TOKEN = (
    "no API token: log in with 'keyhouse login --url URL --token TOKEN' (the token 'keyhouse "
    "serve' printed at its first start), or set KEYHOUSE_TOKEN"
)


def unreachable(url: str, reason: str | None) -> str:
    """The sentence for a server that did not answer."""
    why = f" ({reason})" if reason else ""
    return (
        f"can't reach {url}{why}: is the server running at {url}? Start it with "
        "'keyhouse serve', or give the right address with --url or 'keyhouse login'"
    )


def console(stderr: bool = False) -> Console:
    """A Rich console as wide as the terminal; without a terminal (a pipe, a file), as wide as
    ``COLUMNS`` if set, else as wide as each line needs, so nothing is cut or wrapped."""
    import os

    from rich.console import Console

    found = Console(stderr=stderr)
    if found.is_terminal or os.environ.get("COLUMNS"):
        return found
    return Console(stderr=stderr, width=100_000)


def emit(
    rows: Sequence[Any],
    columns: Sequence[tuple[str, str]],
    as_json: bool,
    whole: Sequence[str] = (),
    empty: str = "nothing to show",
) -> None:
    """Print shapes (pydantic models) as a table of ``(title, attribute)`` columns, or JSON.

    The columns titled in ``whole`` (ids, time windows) are never cut or wrapped: where the
    table would not fit the width, each row is printed as a block of lines instead. An empty
    table is one line, ``empty``.
    """
    if as_json:
        data = [row.model_dump(mode="json", by_alias=True, exclude_none=True) for row in rows]
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    if not rows:
        typer.echo(empty)
        return
    from rich.table import Table

    out = console()
    cells = [[_cell(getattr(row, attribute, None)) for _t, attribute in columns] for row in rows]
    table = Table(show_edge=False, pad_edge=False)
    for title, _attribute in columns:
        table.add_column(title, no_wrap=title in whole, overflow="fold")
    for line in cells:
        table.add_row(*line)
    if not whole or _fits(columns, cells, whole, out.width):
        out.print(table)
        return
    titles = [title for title, _attribute in columns]
    for line in cells:
        _block(titles, line, whole, out.width)


def _fits(
    columns: Sequence[tuple[str, str]], cells: list[list[str]], whole: Sequence[str], width: int
) -> bool:
    """Whether the table fits ``width`` with its whole columns intact and every other column
    at least 10 characters (or as wide as it needs, if less) wide."""
    need = 3 * (len(columns) - 1)
    for index, (title, _attribute) in enumerate(columns):
        natural = max([len(title), *(len(line[index]) for line in cells)])
        need += natural if title in whole else min(natural, max(len(title), 10))
    return need <= width


def _block(titles: list[str], values: list[str], whole: Sequence[str], width: int) -> None:
    """One row as lines: its first whole column (the id) and name, then the other columns
    packed as ``title: value``, the long whole ones (a window) on a line of their own."""
    head = whole[0]
    fields = dict(zip(titles, values, strict=True))
    first = fields[head] + (f"  {fields['name']}" if fields.get("name") else "")
    typer.echo(first)
    rest = [(t, v) for t, v in fields.items() if t not in (head, "name") and v]
    rest.sort(key=lambda item: item[0] in whole)  # the short ones first, packed
    line = ""
    for title, value in rest:
        part = f"{title}: {value}"
        if title in whole:
            if line:
                typer.echo(line)
                line = ""
            typer.echo(f"  {part}")
            continue
        if line and len(line) + 3 + len(part) > width:
            typer.echo(line)
            line = ""
        line = f"{line}   {part}" if line else f"  {part}"
    if line:
        typer.echo(line)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def _one(found: list[Any], what: str, text: str, listing: str) -> Any:
    if len(found) == 1:
        return found[0]
    if not found:
        fail(f"no {what} {text!r}: list them with '{listing}'", EXIT_USAGE)
    fail(f"{len(found)} {what}s are called {text!r}: name it by its id", EXIT_USAGE)


def find_lock(client: Client, text: str) -> Smartlock:
    """A lock by smartlockId or by name (case-insensitive)."""
    locks = client.list_smartlocks()
    if text.isdigit():
        by_id = [lock for lock in locks if lock.smartlock_id == int(text)]
        if by_id:
            return by_id[0]
    return _one(
        [lock for lock in locks if lock.name.lower() == text.lower()],
        "lock",
        text,
        "keyhouse locks",
    )


def find_user(client: Client, text: str) -> AccountUser:
    """A user by accountUserId or e-mail."""
    from keyhouse.client import NotFound

    if text.isdigit():
        try:
            return client.get_user(int(text))
        except NotFound:
            fail(f"no user {text!r}: list them with 'keyhouse users'", EXIT_USAGE)
    wanted = text.strip().lower()
    found = client.list_users(email=text.strip())
    return _one(
        [user for user in found if user.email.lower() == wanted] or found,
        "user",
        text,
        "keyhouse users",
    )


def find_key(client: Client, lock: Smartlock, text: str) -> SmartlockAuth:
    """A key on ``lock`` by its id or its name (or the start of its id, 6 characters or more,
    if only one key's id starts so)."""
    keys = client.list_keys(lock.smartlock_id)
    by_id = [key for key in keys if key.id == text]
    if by_id:
        return by_id[0]
    named = [key for key in keys if key.name.lower() == text.lower()]
    if not named and len(text) >= 6:
        named = [key for key in keys if key.id.startswith(text.lower())]  # a unique id prefix
    return _one(named, "key", text, f"keyhouse keys --lock {lock.smartlock_id}")


def lock_timezone(lock: Smartlock) -> str:
    """The lock's IANA time zone, in which dates without a zone and daily windows apply."""
    return (lock.config.timezone if lock.config else None) or "UTC"


def validity_of(key: SmartlockAuth, timezone: str) -> str:
    """The key's restrictions in plain words, in the lock's time zone."""
    from keyhouse.rules.windows import describe_validity

    try:
        return describe_validity(
            allowed_from_date=key.allowed_from_date,
            allowed_until_date=key.allowed_until_date,
            allowed_week_days=key.allowed_week_days,
            allowed_from_time=key.allowed_from_time,
            allowed_until_time=key.allowed_until_time,
            timezone=timezone,
        )
    except ValueError:
        return f"(unknown time zone {timezone})"


def stranded_app_key(key: SmartlockAuth) -> bool:
    """An app key without remote use on Keyhouse (which answers with ``syncState``): Keyhouse
    has no app and sends no Nuki app invite, so its guest link can't open the door with it."""
    return key.type == 0 and not key.remote_allowed and key.sync_state is not None


STRANDED_WARNING = (
    "warning: {what} is an app key without remote use: Keyhouse sends no Nuki app invite, so "
    "the guest can't open the door with it from the guest link; allow remote use (--remote), "
    "or give a keypad code (--code)"
)
