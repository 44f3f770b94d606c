"""keyhouse invite: a user and a key in one command, or a whole CSV of guests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keyhouse.cli.common import (
    EXIT_API,
    EXIT_USAGE,
    STRANDED_WARNING,
    TokenOption,
    UrlOption,
    api,
    fail,
    find_lock,
    lock_timezone,
    stranded_app_key,
    validity_of,
)

if TYPE_CHECKING:
    from keyhouse.client import AccountUser, Client, Smartlock, SmartlockAuth

CSV_COLUMNS = (
    "email",
    "name",
    "lock",
    "from",
    "until",
    "days",
    "time",
    "remote",
    "code",
    "language",
)
CSV_REQUIRED = ("email", "name", "lock")
_TRUE = {"1", "true", "yes", "y", "x", "on"}
_FALSE = {"", "0", "false", "no", "n", "off"}
KEY_NAME_MAX, CODE_NAME_MAX = 32, 20

INVITE_HELP = """Invite a guest: create the user (or reuse the one with that e-mail) and a key.

The key is an app key for the user, or with --code a keypad code (type 13) linked to the
user. Dates without a time zone are in the lock's time zone: --from D starts at D 00:00,
--until D includes the whole day D. With --wait the command returns once the lock has the key
(exit 1 if the lock refuses it). --language (en or de) is the language of the invite mail and
the guest page; an existing user's language is changed to it.

Every option is checked before anything is sent; if the server refuses a later step, what the
command created (the user, the key) is removed again and the error says so. Inviting again
is safe: if the user already has a key of that name on the lock, it is left unchanged, or
updated where the options differ, never doubled. --dry-run shows what would be created,
changed or left, and changes nothing.

Many guests at once: keyhouse invite --csv guests.csv. The CSV has a header row with the
columns email, name, lock (required) and from, until, days, time, remote, code, language
(optional; the same values as the options, remote is yes/no; quote a cell that holds a comma,
e.g. "sat,sun"). Every row gets one result line ("row N" is line N of the file, the header
being row 1): ok (invited), updated, unchanged or failed; a failed row does not stop the
others, and the exit code is 1 if any row failed. Running the same file again is safe.

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
    names: tuple[str, ...] = ("--from", "--until", "--days", "--time", "--code"),
) -> dict[str, Any]:
    """Key fields from the option texts; a bad value raises ValueError (one sentence)."""
    from keyhouse.rules.cli_input import key_fields, parse_code

    from_name, until_name, days_name, time_name, code_name = names
    fields = key_fields(
        timezone,
        from_=from_,
        until=until,
        days=days,
        time_=time_,
        names=(from_name, until_name, days_name, time_name),
    )
    if code:
        fields["type"] = 13
        fields["code"] = parse_code(code, code_name)
    return fields


RESTRICTIONS = (
    "allowed_from_date",
    "allowed_until_date",
    "allowed_week_days",
    "allowed_from_time",
    "allowed_until_time",
)
# The settings of a key in the words of the options, for "updated (days, time)".
_WORDS = {
    "allowed_from_date": "from",
    "allowed_until_date": "until",
    "allowed_week_days": "days",
    "allowed_from_time": "time",
    "allowed_until_time": "time",
    "remote_allowed": "remote",
    "code": "code",
}


@dataclass
class Plan:
    """What one invite will do: create, update or leave the user's key of that name."""

    lock: Smartlock
    email: str
    name: str
    language: str | None
    fields: dict[str, Any]  # the key's wanted settings (SDK names), without the user
    user: AccountUser | None = None  # the existing user with that e-mail
    key: SmartlockAuth | None = None  # the user's existing key of that name on the lock
    changes: dict[str, Any] = dataclass_field(default_factory=dict)

    @property
    def action(self) -> str:
        if self.key is None:
            return "create"
        return "update" if self.changes else "unchanged"

    @property
    def changed_words(self) -> str:
        return ", ".join(dict.fromkeys(_WORDS.get(name, name) for name in self.changes))


@dataclass
class Outcome:
    user: AccountUser
    user_created: bool
    key: SmartlockAuth
    action: str  # created, updated, unchanged
    changed: str = ""
    language_changed: bool = False


def _plan(
    client: Client,
    lock: Smartlock,
    email: str,
    name: str,
    fields: dict[str, Any],
    remote: bool,
    language: str | None,
) -> Plan:
    """Find out, by reading only, what inviting this guest would do."""
    limit = CODE_NAME_MAX if fields.get("type") == 13 else KEY_NAME_MAX
    wanted = {"name": name.strip()[:limit], "remote_allowed": remote, "type": 0, **fields}
    plan = Plan(lock, email.strip(), name.strip(), language, wanted)
    address = email.strip().lower()
    users = [u for u in client.list_users(email=email.strip()) if u.email.lower() == address]
    if not users:
        return plan
    plan.user = users[0]
    same = [
        key
        for key in client.list_keys(lock.smartlock_id, account_user_id=plan.user.account_user_id)
        if key.name.strip().lower() == wanted["name"].lower() and key.sync_state != "deleting"
    ]
    if not same:
        return plan
    if len(same) > 1:
        raise RowError(
            f"{plan.user.email} has {len(same)} keys called {wanted['name']!r} on {lock.name}: "
            "remove the extra ones with 'keyhouse keys rm' first"
        )
    key = plan.key = same[0]
    if key.type != wanted["type"]:
        kinds = {0: "an app key", 13: "a keypad code"}
        raise RowError(
            f"{plan.user.email} already has {kinds.get(key.type, f'a type {key.type} key')} "
            f"called {key.name!r} on {lock.name} ({key.id}); remove it with 'keyhouse keys rm "
            f"--lock {lock.smartlock_id} {key.id}' to make it {kinds.get(wanted['type'])}"
        )
    for attribute in ("remote_allowed", "code", *RESTRICTIONS):
        if attribute == "code" and key.type != 13:
            continue
        if getattr(key, attribute) != wanted.get(attribute):
            plan.changes[attribute] = wanted.get(attribute)
    return plan


def _undo(client: Client, steps: list[tuple[str, Callable[[], object]]]) -> str:
    """Undo this run's steps, newest first; the words for the result line."""
    done, left = [], []
    for words, step in reversed(steps):
        try:
            step()
        except Exception:  # the undo is best effort, and says what it left
            left.append(words)
        else:
            done.append(words)
    if not steps:
        return "nothing was created"
    parts = []
    if done:
        parts.append(f"undid what this run had done: {', '.join(done)}")
    if left:
        parts.append(f"could not undo it ({'; '.join(left)}): do that by hand")
    return "; ".join(parts)


def _apply(client: Client, plan: Plan, wait: bool) -> Outcome:
    """Carry out a plan. If a step fails, what this run created is removed again, and the
    RowError says so."""
    from keyhouse.client import KeyhouseAPIError, SyncFailed, WaitTimeout

    lock = plan.lock
    undo: list[tuple[str, Callable[[], object]]] = []
    user, user_created, language_changed = plan.user, False, False
    key: SmartlockAuth | None = None
    try:
        if user is None:
            user = client.create_user(plan.email, plan.name, language=plan.language)
            user_created = True
            created_id = user.account_user_id
            undo.append((f"removed user {plan.email}", lambda: client.delete_user(created_id)))
        elif plan.language and user.language != plan.language:
            before, user_id = user.language, user.account_user_id
            user = client.update_user(user_id, language=plan.language)
            language_changed = True
            undo.append(
                (
                    f"restored {plan.email}'s language",
                    lambda: client.update_user(user_id, language=before),
                )
            )
        if plan.key is None:
            key = client.create_key(
                lock.smartlock_id, account_user_id=user.account_user_id, **plan.fields
            )
            key_id = key.id
            undo.append(
                (f"removed key {key_id}", lambda: client.delete_key(lock.smartlock_id, key_id))
            )
            action = "created"
        elif plan.changes:
            client.update_key(lock.smartlock_id, plan.key.id, **plan.changes)
            key = client.get_key(lock.smartlock_id, plan.key.id)
            action = "updated"
        else:
            key, action = plan.key, "unchanged"
        if wait and action != "unchanged":
            try:
                key = client.wait_for_key(lock.smartlock_id, key.id)
            except SyncFailed as exc:
                raise RowError(
                    f"{lock.name} refused key {key.id}: {exc.error or 'no reason given'}"
                ) from None
            except WaitTimeout:
                # The change is queued and will apply: nothing to undo.
                raise RowError(
                    f"{lock.name} has not confirmed key {key.id} yet (still pending); "
                    "check it later with 'keyhouse keys'"
                ) from None
    except RowError as exc:
        if "still pending" in str(exc):
            raise
        raise RowError(f"{exc}; {_undo(client, undo)}") from None
    except KeyhouseAPIError as exc:
        from keyhouse.client import AuthError

        if isinstance(exc, AuthError):
            raise  # no row can work: the whole command stops (exit 4)
        raise RowError(f"{exc.message}; {_undo(client, undo)}") from None
    return Outcome(user, user_created, key, action, plan.changed_words, language_changed)


def _describe_plan(plan: Plan) -> str:
    """What a dry run would do, in one line's tail."""
    who = plan.email if plan.user else f"{plan.email} (new user)"
    if plan.user and plan.language and plan.user.language != plan.language:
        who = f"{plan.email} (language to {plan.language})"
    kind = "keypad code" if plan.fields.get("type") == 13 else "app key"
    name = plan.fields["name"]
    if plan.action == "create":
        return f"would create {kind} {name!r} for {who} on {plan.lock.name}"
    assert plan.key is not None
    if plan.action == "update":
        return (
            f"would update {plan.key.id} {name!r} of {who} on {plan.lock.name} "
            f"({plan.changed_words})"
        )
    return f"would leave {plan.key.id} {name!r} of {who} on {plan.lock.name} unchanged"


# --- one guest --------------------------------------------------------------------------------


def _single(
    lock_text: str,
    email: str,
    name: str,
    options: dict[str, str | None],
    remote: bool,
    language: str | None,
    wait: bool,
    dry_run: bool,
    url: str | None,
    token: str | None,
) -> None:
    from keyhouse.rules.cli_input import parse_language

    texts = (options["from"], options["until"], options["days"], options["time"], options["code"])
    # Everything that needs no lock is checked before anything is sent (the order of --from
    # and --until does not depend on the lock's zone).
    try:
        _parse_fields("UTC", *texts)
        language = parse_language(language) if language is not None else None
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    with api(url, token) as client:
        lock = find_lock(client, lock_text)
        timezone = lock_timezone(lock)
        try:
            fields = _parse_fields(timezone, *texts)
        except ValueError as exc:
            fail(str(exc), EXIT_USAGE)
        try:
            plan = _plan(client, lock, email, name, fields, remote, language)
            if dry_run:
                typer.echo(_describe_plan(plan))
                return
            done = _apply(client, plan, wait)
        except RowError as exc:
            fail(str(exc), EXIT_API)
    user, key = done.user, done.key
    kind = f"keypad code {key.code}" if key.type == 13 else "app key"
    language_note = f", language now {user.language}" if done.language_changed else ""
    typer.echo(
        f"user:  {'created' if done.user_created else 'reused'} {user.email} ({user.name}), "
        f"accountUserId {user.account_user_id}{language_note}"
    )
    note = {
        "created": "",
        "updated": f" (changed: {done.changed})",
        "unchanged": " (it was already there, with these settings)",
    }[done.action]
    typer.echo(
        f"key:   {done.action} {key.id} {key.name!r} ({kind}) on {lock.name} "
        f"({lock.smartlock_id}){note}"
    )
    typer.echo(f"valid: {validity_of(key, timezone)}")
    typer.echo(f"sync:  {key.sync_state or 'unknown'}")
    if stranded_app_key(key):
        typer.echo(STRANDED_WARNING.format(what=repr(key.name)), err=True)


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


def _csv_row(
    client: Client,
    locks: list[Smartlock],
    row: dict[str, str],
    wait: bool,
    dry_run: bool,
    stranded: list[str],
) -> tuple[str, str]:
    """Invite one CSV row: its outcome (ok, updated, unchanged, or a dry run's "plan") and
    the tail of its result line; raises RowError if it can't be done."""
    from keyhouse.rules.cli_input import parse_language

    for column in CSV_REQUIRED:
        if not row.get(column):
            raise RowError(f"the {column} cell is empty")
    texts = (row.get("from"), row.get("until"), row.get("days"), row.get("time"), row.get("code"))
    names = ("from", "until", "days", "time", "code")
    try:
        _parse_fields("UTC", *texts, names=names)  # the checks that need no request
        remote = _flag(row.get("remote", ""))
        language = parse_language(row["language"], "language") if row.get("language") else None
    except ValueError as exc:
        raise RowError(str(exc)) from None
    lock = _csv_lock(locks, row["lock"])
    try:
        fields = _parse_fields(lock_timezone(lock), *texts, names=names)
    except ValueError as exc:
        raise RowError(str(exc)) from None
    plan = _plan(client, lock, row["email"], row["name"], fields, remote, language)
    if dry_run:
        return "plan", _describe_plan(plan)
    done = _apply(client, plan, wait)
    if stranded_app_key(done.key):
        stranded.append(row["email"])
    tail = f"{row['email']} key {done.key.id} on {lock.name}"
    if done.action == "updated":
        return "updated", f"{tail} ({done.changed})"
    return ("ok" if done.action == "created" else done.action), tail


def _batch(path: Path, wait: bool, dry_run: bool, url: str | None, token: str | None) -> None:
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    rows = _read_csv(path)
    counts = {"ok": 0, "updated": 0, "unchanged": 0, "plan": 0, "failed": 0}
    stranded: list[str] = []
    err = Console(stderr=True)
    with api(url, token) as client:
        locks = client.list_smartlocks()
        progress = Progress(
            TextColumn("checking" if dry_run else "inviting"),
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
                    outcome, tail = _csv_row(client, locks, row, wait, dry_run, stranded)
                    shown = tail if outcome == "plan" else f"{outcome} {tail}"
                    line = f"row {number}: {shown}"
                except RowError as exc:
                    outcome = "failed"
                    line = f"row {number}: failed: {exc}"
                counts[outcome] += 1
                if out is not None:
                    out(line, markup=False, highlight=False)
                else:
                    typer.echo(line)
                progress.advance(task)
    if dry_run:
        summary = (
            f"dry run, nothing was changed: {counts['plan']} of {len(rows)} row(s) can be done, "
            f"{counts['failed']} would fail."
        )
    else:
        summary = (
            f"{counts['ok']} of {len(rows)} guest(s) invited, {counts['updated']} updated, "
            f"{counts['unchanged']} unchanged, {counts['failed']} failed."
        )
    typer.echo(summary, err=True)
    if stranded:
        shown = ", ".join(stranded[:3]) + (", …" if len(stranded) > 3 else "")
        typer.echo(
            f"warning: {len(stranded)} app key(s) without remote use ({shown}): Keyhouse sends "
            "no Nuki app invite, so these guests can't open the door from the guest link; set "
            "remote to yes, or give a code",
            err=True,
        )
    if counts["failed"]:
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
        language: Annotated[
            str | None,
            typer.Option("--language", help="en or de: the invite mail's and guest page's"),
        ] = None,
        wait: Annotated[
            bool, typer.Option("--wait", help="Wait until the lock has applied the key")
        ] = False,
        dry_run: Annotated[
            bool,
            typer.Option("--dry-run", help="Only show what would be created, changed or left"),
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
                "--language": language,
            }
            clash = [option for option, value in given.items() if value is not None]
            if clash:
                fail(
                    f"--csv takes everything from the file: leave out {', '.join(clash)}",
                    EXIT_USAGE,
                )
            _batch(csv_file, wait, dry_run, url, token)
            return
        missing = [
            option
            for option, value in (("--lock", lock), ("--email", email), ("--name", name))
            if not value
        ]
        if missing:
            fail(f"give {', '.join(missing)} (or --csv FILE for many guests)", EXIT_USAGE)
        assert lock is not None and email is not None and name is not None
        options = {"from": from_, "until": until, "days": days, "time": time_, "code": code}
        _single(lock, email, name, options, remote, language, wait, dry_run, url, token)
