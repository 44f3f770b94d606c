"""keyhouse invite: a user and a key in one command, or a whole CSV of guests."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keyhouse.cli.common import (
    EXIT_API,
    EXIT_USAGE,
    TokenOption,
    UrlOption,
    api,
    fail,
    find_lock,
    lock_timezone,
    validity_of,
)

if TYPE_CHECKING:
    from keyhouse.client import AccountUser, Client, Smartlock, SmartlockAuth

CSV_COLUMNS = ("email", "name", "lock", "from", "until", "days", "time", "remote", "code")
CSV_REQUIRED = ("email", "name", "lock")
_TRUE = {"1", "true", "yes", "y", "x", "on"}
_FALSE = {"", "0", "false", "no", "n", "off"}
KEY_NAME_MAX, CODE_NAME_MAX = 32, 20

INVITE_HELP = """Invite a guest: create the user (or reuse the one with that e-mail) and a key.

The key is an app key for the user, or with --code a keypad code (type 13) linked to the
user. Dates without a time zone are in the lock's time zone: --from D starts at D 00:00,
--until D includes the whole day D. With --wait the command returns once the lock has the key
(exit 1 if the lock refuses it).

Many guests at once: keyhouse invite --csv guests.csv. The CSV has a header row with the
columns email, name, lock (required) and from, until, days, time, remote, code (optional; the
same values as the options, remote is yes/no; quote a cell that holds a comma, e.g.
"sat,sun"). Every row gets one result line ("row N" is line N of the file, the header being
row 1); a failed row does not stop the others, and the exit code is 1 if any row failed.

Exit codes: 0 done, 1 the server or the lock refused, 2 bad options or CSV, 4 log in first.
"""
# Paragraphs on one line each, so the help wraps to the terminal's width.
INVITE_HELP = "\n\n".join(" ".join(part.split()) for part in INVITE_HELP.split("\n\n"))


class RowError(Exception):
    """One row (or the single invite) can't be done: the message is one sentence."""


# --- the pieces of one invite -----------------------------------------------------------------


def _parse_fields(
    timezone: str,
    from_: str | None,
    until: str | None,
    days: str | None,
    time_: str | None,
    code: str | None,
) -> dict[str, Any]:
    """Key fields from the option texts; a bad value raises ValueError (one sentence)."""
    from keyhouse.rules.cli_input import key_fields, parse_code

    fields = key_fields(timezone, from_=from_, until=until, days=days, time_=time_)
    if code:
        fields["type"] = 13
        fields["code"] = parse_code(code, "--code")
    return fields


def _pydantic_sentence(exc: Exception) -> str:
    errors = exc.errors()  # type: ignore[attr-defined]
    first = errors[0] if errors else {}
    where = ".".join(str(part) for part in first.get("loc", ())) or "input"
    return f"{where}: {first.get('msg', 'is not valid')}"


def _user(client: Client, email: str, name: str) -> tuple[AccountUser, bool]:
    """The account user with ``email`` (reused) or a new one; True if created."""
    wanted = email.strip().lower()
    found = [u for u in client.list_users(email=email.strip()) if u.email.lower() == wanted]
    if found:
        return found[0], False
    return client.create_user(email.strip(), name.strip()), True


def _invite(
    client: Client,
    lock: Smartlock,
    email: str,
    name: str,
    fields: dict[str, Any],
    remote: bool,
    wait: bool,
) -> tuple[AccountUser, bool, SmartlockAuth]:
    """Create (or reuse) the user and create the key; API errors propagate."""
    from keyhouse.client import SyncFailed, WaitTimeout

    user, created = _user(client, email, name)
    limit = CODE_NAME_MAX if fields.get("type") == 13 else KEY_NAME_MAX
    key_fields = {
        "name": name.strip()[:limit],
        "account_user_id": user.account_user_id,
        "remote_allowed": remote,
        **fields,
    }
    key = client.create_key(lock.smartlock_id, **key_fields)
    if wait:
        try:
            key = client.wait_for_key(lock.smartlock_id, key.id)
        except SyncFailed as exc:
            raise RowError(
                f"{lock.name} refused key {key.id}: {exc.error or 'no reason given'}"
            ) from None
        except WaitTimeout:
            raise RowError(
                f"{lock.name} has not confirmed key {key.id} yet (still pending); "
                "check it later with 'keyhouse keys'"
            ) from None
    return user, created, key


# --- one guest --------------------------------------------------------------------------------


def _single(
    lock_text: str,
    email: str,
    name: str,
    from_: str | None,
    until: str | None,
    days: str | None,
    time_: str | None,
    remote: bool,
    code: str | None,
    wait: bool,
    url: str | None,
    token: str | None,
) -> None:
    import pydantic

    # The parts that need no lock are checked before anything is sent.
    try:
        _parse_fields("UTC", None, None, days, time_, code)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    with api(url, token) as client:
        lock = find_lock(client, lock_text)
        timezone = lock_timezone(lock)
        try:
            fields = _parse_fields(timezone, from_, until, days, time_, code)
        except ValueError as exc:
            fail(str(exc), EXIT_USAGE)
        try:
            user, created, key = _invite(client, lock, email, name, fields, remote, wait)
        except RowError as exc:
            fail(str(exc), EXIT_API)
        except pydantic.ValidationError as exc:
            fail(_pydantic_sentence(exc), EXIT_USAGE)
    kind = f"keypad code {key.code}" if key.type == 13 else "app key"
    typer.echo(
        f"user:  {'created' if created else 'reused'} {user.email} ({user.name}), "
        f"accountUserId {user.account_user_id}"
    )
    typer.echo(f"key:   {key.id} {key.name!r} ({kind}) on {lock.name} ({lock.smartlock_id})")
    typer.echo(f"valid: {validity_of(key, timezone)}")
    typer.echo(f"sync:  {key.sync_state or 'unknown'}")


# --- a CSV of guests --------------------------------------------------------------------------


def _read_csv(path: Path) -> list[tuple[int, dict[str, str]]]:
    """The rows of the CSV with their line numbers; a bad file ends the command (exit 2)."""
    import csv

    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [(column or "").strip().lower() for column in reader.fieldnames or []]
            if not header:
                fail(f"{path} is empty: it needs a header row ({','.join(CSV_COLUMNS)})", 2)
            missing = [column for column in CSV_REQUIRED if column not in header]
            if missing:
                fail(
                    f"{path} has no column {', '.join(missing)}: the header row needs "
                    f"{', '.join(CSV_REQUIRED)} (optional: {', '.join(CSV_COLUMNS[3:])})",
                    EXIT_USAGE,
                )
            unknown = [column for column in header if column not in CSV_COLUMNS]
            if unknown:
                fail(
                    f"{path} has unknown column(s) {', '.join(unknown)}: the columns are "
                    f"{', '.join(CSV_COLUMNS)}",
                    EXIT_USAGE,
                )
            reader.fieldnames = header
            rows = []
            for record in reader:
                if None in record:
                    fail(f"{path} line {reader.line_num} has more cells than the header", 2)
                values = {k: (v or "").strip() for k, v in record.items()}
                rows.append((reader.line_num, values))
            return rows
    except OSError as exc:
        fail(f"can't read {path}: {exc.strerror or exc}", EXIT_USAGE)
    except (UnicodeDecodeError, csv.Error) as exc:
        fail(f"{path} is not a readable UTF-8 CSV file: {exc}", EXIT_USAGE)


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"remote {text!r} is not valid: write yes or no")


def _csv_lock(locks: list[Smartlock], text: str) -> Smartlock:
    if text.isdigit():
        for lock in locks:
            if lock.smartlock_id == int(text):
                return lock
    named = [lock for lock in locks if lock.name.lower() == text.lower()]
    if len(named) == 1:
        return named[0]
    if not named:
        raise RowError(f"no lock {text!r}: list them with 'keyhouse locks'")
    raise RowError(f"{len(named)} locks are called {text!r}: name it by its id")


def _csv_row(client: Client, locks: list[Smartlock], row: dict[str, str], wait: bool) -> str:
    """Invite one CSV row; returns the tail of its ok line, raises RowError otherwise."""
    import pydantic

    from keyhouse.client import KeyhouseAPIError

    for column in CSV_REQUIRED:
        if not row.get(column):
            raise RowError(f"the {column} cell is empty")
    lock = _csv_lock(locks, row["lock"])
    try:
        fields = _parse_fields(
            lock_timezone(lock),
            row.get("from"),
            row.get("until"),
            row.get("days"),
            row.get("time"),
            row.get("code"),
        )
        remote = _flag(row.get("remote", ""))
    except ValueError as exc:
        raise RowError(str(exc).replace("--", "")) from None
    try:
        _user, _created, key = _invite(
            client, lock, row["email"], row["name"], fields, remote, wait
        )
    except KeyhouseAPIError as exc:
        from keyhouse.client import AuthError

        if isinstance(exc, AuthError):
            raise  # no row can work: the whole command stops (exit 4)
        raise RowError(exc.message) from None
    except pydantic.ValidationError as exc:
        raise RowError(_pydantic_sentence(exc)) from None
    return f"{row['email']} key {key.id} on {lock.name}"


def _batch(path: Path, wait: bool, url: str | None, token: str | None) -> None:
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    rows = _read_csv(path)
    failed = 0
    err = Console(stderr=True)
    with api(url, token) as client:
        locks = client.list_smartlocks()
        progress = Progress(
            TextColumn("inviting"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err,
            redirect_stdout=False,
            redirect_stderr=False,
            transient=True,
        )
        # Result lines go to stdout; when stdout is the same terminal as the bar, print them
        # through the bar's console so they scroll above it.
        out = progress.console.print if sys.stdout.isatty() and err.is_terminal else None
        with progress:
            task = progress.add_task("invite", total=len(rows))
            for number, row in rows:
                try:
                    line = f"row {number}: ok {_csv_row(client, locks, row, wait)}"
                except RowError as exc:
                    failed += 1
                    line = f"row {number}: failed: {exc}"
                if out is not None:
                    out(line, markup=False, highlight=False)
                else:
                    typer.echo(line)
                progress.advance(task)
    done = len(rows) - failed
    typer.echo(f"{done} of {len(rows)} guest(s) invited, {failed} failed.", err=True)
    if failed:
        raise typer.Exit(EXIT_API)


# --- the command ------------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    """Add ``keyhouse invite`` to the ``keyhouse`` app."""

    @app.command("invite", help=INVITE_HELP)
    def invite(
        lock: Annotated[
            str | None, typer.Option("--lock", help="The lock: its name or smartlockId")
        ] = None,
        email: Annotated[
            str | None, typer.Option("--email", help="The guest's e-mail (the invite goes there)")
        ] = None,
        name: Annotated[
            str | None, typer.Option("--name", help="The guest's name (also the key's name)")
        ] = None,
        from_: Annotated[
            str | None,
            typer.Option("--from", help="First day, YYYY-MM-DD in the lock's time zone"),
        ] = None,
        until: Annotated[
            str | None,
            typer.Option("--until", help="Last day (included), YYYY-MM-DD in the lock's zone"),
        ] = None,
        days: Annotated[
            str | None, typer.Option("--days", help="Week days, e.g. mon-fri or sat,sun")
        ] = None,
        time_: Annotated[
            str | None,
            typer.Option("--time", help="Daily window in the lock's time, e.g. 08:00-18:00"),
        ] = None,
        remote: Annotated[
            bool, typer.Option("--remote", help="Allow remote use of the app key")
        ] = False,
        code: Annotated[
            str | None, typer.Option("--code", help="Make a 6-digit keypad code instead")
        ] = None,
        wait: Annotated[
            bool, typer.Option("--wait", help="Wait until the lock has applied the key")
        ] = False,
        csv_file: Annotated[
            Path | None,
            typer.Option("--csv", help="Invite every row of this CSV file (see above)"),
        ] = None,
        url: UrlOption = None,
        token: TokenOption = None,
    ) -> None:
        if csv_file is not None:
            given = {
                "--lock": lock,
                "--email": email,
                "--name": name,
                "--from": from_,
                "--until": until,
                "--days": days,
                "--time": time_,
                "--code": code,
                "--remote": remote or None,
            }
            clash = [option for option, value in given.items() if value is not None]
            if clash:
                fail(
                    f"--csv takes everything from the file: leave out {', '.join(clash)}",
                    EXIT_USAGE,
                )
            _batch(csv_file, wait, url, token)
            return
        missing = [
            option
            for option, value in (("--lock", lock), ("--email", email), ("--name", name))
            if not value
        ]
        if missing:
            fail(f"give {', '.join(missing)} (or --csv FILE for many guests)", EXIT_USAGE)
        assert lock is not None and email is not None and name is not None
        _single(lock, email, name, from_, until, days, time_, remote, code, wait, url, token)
