"""Client commands: login, locks, users, keys, log, lock, unlock (through the SDK)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from keyhouse.cli.common import (
    EXIT_AUTH,
    EXIT_USAGE,
    STRANDED_WARNING,
    JsonOption,
    Profile,
    TokenOption,
    UrlOption,
    api,
    emit,
    fail,
    find_key,
    find_lock,
    find_user,
    lock_timezone,
    stranded_app_key,
    validity_of,
)

if TYPE_CHECKING:
    from keyhouse.client import Client, Smartlock, SmartlockAuth

T = TypeVar("T")

LOCK_TYPES = {0: "keyturner", 1: "box", 2: "opener", 3: "smartdoor", 4: "smartlock 3/4"}
LOCK_STATES = {
    0: "uncalibrated",
    1: "locked",
    2: "unlocking",
    3: "unlocked",
    4: "locking",
    5: "unlatched",
    6: "unlocked (lock 'n' go)",
    7: "unlatching",
    254: "motor blocked",
    255: "undefined",
}
KEY_TYPES = {0: "app", 1: "bridge", 2: "fob", 3: "keypad", 13: "keypad code"}
ACTIONS = {
    1: "unlock",
    2: "lock",
    3: "unlatch",
    4: "lock 'n' go",
    5: "lock 'n' go + unlatch",
}
TRIGGERS = {
    0: "system",
    1: "manual",
    2: "button",
    3: "automatic",
    4: "web",
    5: "app",
    6: "auto lock",
    255: "keypad",
}
LOG_STATES = {
    0: "success",
    1: "motor blocked",
    2: "canceled",
    3: "too recent",
    4: "busy",
    5: "low motor voltage",
    6: "clutch failure",
    7: "motor power failure",
    8: "incomplete",
    9: "rejected",
    10: "rejected (night mode)",
    254: "other error",
    255: "unknown",
}

LockOption = Annotated[str, typer.Option("--lock", help="The lock: its name or smartlockId")]
KeyArgument = Annotated[str, typer.Argument(help="The key: its id or its name on the lock")]
WaitOption = Annotated[
    bool, typer.Option("--wait", help="Wait until the lock has applied the change")
]

users_app = typer.Typer(
    help="Account users: list them (no subcommand), add, rm.", invoke_without_command=True
)
keys_app = typer.Typer(
    help="Keys (authorizations): list them (no subcommand), add, edit, enable, disable, rm.",
    invoke_without_command=True,
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``keyhouse`` app."""
    app.command("login")(login)
    app.command("locks")(locks)
    app.add_typer(users_app, name="users")
    app.add_typer(keys_app, name="keys")
    app.command("log")(log)
    app.command("audit")(audit)
    app.command("lock")(lock_command)
    app.command("unlock")(unlock_command)


# --- helpers ----------------------------------------------------------------------------------


def _word(words: dict[int, str], value: int | None) -> str:
    if value is None:
        return ""
    return words.get(value, str(value))


def _usage(action: Callable[[], T]) -> T:
    """Run a parser; its ValueError ends the command with exit code 2."""
    try:
        return action()
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)


def _in_zone(moment: Any, timezone: str) -> Any:
    """A date-time in the lock's time zone (unchanged if the zone is unknown)."""
    from zoneinfo import ZoneInfo

    try:
        return moment.astimezone(ZoneInfo(timezone)) if moment is not None else None
    except (ValueError, KeyError):
        return moment


def _row(**values: Any) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(**values)


def _show_keys(
    client: Client, keys: Iterable[SmartlockAuth], as_json: bool, locks: list[Smartlock] | None
) -> None:
    keys = list(keys)
    if as_json:
        emit(keys, [], True)
        return
    by_id = {lock.smartlock_id: lock for lock in (locks or client.list_smartlocks())}
    emails = {user.account_user_id: user.email for user in client.list_users()}
    rows = []
    for key in keys:
        lock = by_id.get(key.smartlock_id)
        rows.append(
            _row(
                lock=lock.name if lock else key.smartlock_id,
                id=key.id,
                name=key.name,
                type=_word(KEY_TYPES, key.type) + (f" {key.code}" if key.code is not None else ""),
                user=emails.get(key.account_user_id, key.account_user_id)
                if key.account_user_id
                else "",
                enabled=key.enabled,
                window=validity_of(key, lock_timezone(lock) if lock else "UTC"),
                sync=key.sync_state,
            )
        )
    emit(
        rows,
        [
            ("lock", "lock"),
            ("id", "id"),
            ("name", "name"),
            ("type", "type"),
            ("user", "user"),
            ("enabled", "enabled"),
            ("window", "window"),
            ("syncState", "sync"),
        ],
        False,
        whole=("id", "window"),
        empty="no keys",
    )


def _restrictions(
    timezone: str,
    from_: str | None,
    until: str | None,
    days: str | None,
    time_: str | None,
) -> dict[str, Any]:
    from keyhouse.rules.cli_input import key_fields

    return _usage(lambda: key_fields(timezone, from_=from_, until=until, days=days, time_=time_))


def _code(code: str | None) -> int | None:
    from keyhouse.rules.cli_input import parse_code

    return None if code is None else _usage(lambda: parse_code(code))


FromOption = Annotated[
    str | None,
    typer.Option("--from", help="First day (YYYY-MM-DD, the lock's time zone) or a date-time"),
]
UntilOption = Annotated[
    str | None,
    typer.Option("--until", help="Last day, included (YYYY-MM-DD, the lock's time zone)"),
]
DaysOption = Annotated[
    str | None, typer.Option("--days", help="Week days, e.g. mon-fri, sat,sun, mon,wed-fri")
]
TimeOption = Annotated[
    str | None, typer.Option("--time", help="Daily window in the lock's time, e.g. 08:00-18:00")
]
CodeOption = Annotated[
    str | None, typer.Option("--code", help="A 6-digit keypad code (makes a keypad code key)")
]


# --- login and locks --------------------------------------------------------------------------


def login(
    url: Annotated[str, typer.Option("--url", help="The server's base URL")] = (
        "http://127.0.0.1:8080"
    ),
    token: Annotated[str | None, typer.Option("--token", help="An API token")] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="The profile's name (else --profile, else 'default')"),
    ] = None,
) -> None:
    """Check a token against a server and save them as a profile (the new default)."""
    if not token:
        fail("give the API token with --token (e.g. the kh_… printed by 'keyhouse serve')", 2)
    from keyhouse.cli.common import unreachable
    from keyhouse.client import (
        AuthError,
        Client,
        ConnectionFailed,
        InvalidArgument,
        KeyhouseAPIError,
        KeyhouseClientError,
    )
    from keyhouse.client.config import save_profile

    try:
        with Client(token=token, base_url=url, max_retries=1) as client:
            count = len(client.list_smartlocks())
    except AuthError as exc:
        fail(f"the server refused the token: {exc.message}", EXIT_AUTH)
    except InvalidArgument as exc:
        fail(exc.message.replace("base_url", "--url", 1), EXIT_USAGE)
    except KeyhouseAPIError as exc:
        fail(exc.message)
    except ConnectionFailed as exc:
        fail(unreachable(url.rstrip("/"), exc.reason))
    except KeyhouseClientError as exc:
        fail(str(exc))
    profile = name or Profile.name or "default"
    path = save_profile(profile, url.rstrip("/"), token)
    typer.echo(f"Logged in to {url} ({count} lock(s)); saved profile {profile!r} in {path}.")


def locks(as_json: JsonOption = False, url: UrlOption = None, token: TokenOption = None) -> None:
    """List the account's locks."""
    with api(url, token) as client:
        found = client.list_smartlocks()
    if as_json:
        emit(found, [], True)
        return
    rows = [
        _row(
            id=lock.smartlock_id,
            name=lock.name,
            type=_word(LOCK_TYPES, lock.type),
            state=_word(LOCK_STATES, lock.state.state if lock.state else None),
            online=lock.server_state == 0,
            keypad=bool(lock.config and lock.config.keypad_paired),
        )
        for lock in found
    ]
    columns = [
        ("smartlockId", "id"),
        ("name", "name"),
        ("type", "type"),
        ("state", "state"),
        ("online", "online"),
        ("keypad", "keypad"),
    ]
    emit(rows, columns, False, whole=("smartlockId",), empty="no locks")


# --- users ------------------------------------------------------------------------------------

USER_COLUMNS = [
    ("accountUserId", "account_user_id"),
    ("email", "email"),
    ("name", "name"),
    ("language", "language"),
    ("created", "creation_date"),
]


@users_app.callback()
def users(
    ctx: typer.Context,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """List the account users (or run a subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    with api(url, token) as client:
        found = client.list_users()
    emit(found, USER_COLUMNS, as_json, empty="no users")


@users_app.command("add")
def users_add(
    email: Annotated[str, typer.Argument(help="The user's e-mail")],
    name: Annotated[str, typer.Option("--name", help="The user's name")],
    language: Annotated[
        str | None, typer.Option("--language", help="e.g. en, de (invite mail language)")
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Add an account user."""
    with api(url, token) as client:
        user = client.create_user(email, name, language=language)
    if as_json:
        emit([user], USER_COLUMNS, True)
    else:
        typer.echo(f"Added user {user.email} (accountUserId {user.account_user_id}).")


@users_app.command("rm")
def users_rm(
    user: Annotated[str, typer.Argument(help="The user's e-mail or accountUserId")],
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Remove an account user (and, asynchronously, their keys)."""
    with api(url, token) as client:
        found = find_user(client, user)
        client.delete_user(found.account_user_id)
    typer.echo(f"Removed user {found.email} (accountUserId {found.account_user_id}).")


# --- keys -------------------------------------------------------------------------------------


@keys_app.callback()
def keys(
    ctx: typer.Context,
    lock: Annotated[str | None, typer.Option("--lock", help="Only this lock (name or id)")] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="Only this user's keys (e-mail or id)")
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """List keys, with their time window in plain words (or run a subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    with api(url, token) as client:
        all_locks = client.list_smartlocks()
        lock_id = find_lock(client, lock).smartlock_id if lock else None
        user_id = find_user(client, user).account_user_id if user else None
        found = client.list_keys(lock_id, account_user_id=user_id)
        _show_keys(client, found, as_json, all_locks)


@keys_app.command("add")
def keys_add(
    lock: LockOption,
    name: Annotated[str, typer.Option("--name", help="The key's name")],
    user: Annotated[
        str | None, typer.Option("--user", help="The user (e-mail or id) of an app key")
    ] = None,
    code: CodeOption = None,
    from_: FromOption = None,
    until: UntilOption = None,
    days: DaysOption = None,
    time_: TimeOption = None,
    remote: Annotated[bool, typer.Option("--remote", help="Allow remote use (app keys)")] = False,
    wait: WaitOption = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Add a key: a keypad code (--code) or an app key for --user."""
    if code is None and user is None:
        fail("give --user EMAIL for an app key or --code 345678 for a keypad code", EXIT_USAGE)
    number = _code(code)
    with api(url, token) as client:
        found = find_lock(client, lock)
        fields = _restrictions(lock_timezone(found), from_, until, days, time_)
        fields.update(name=name, remote_allowed=remote)
        if number is not None:
            fields.update(type=13, code=number)
        if user is not None:
            fields["account_user_id"] = find_user(client, user).account_user_id
        key = client.create_key(found.smartlock_id, **fields)
        if wait:
            key = client.wait_for_key(found.smartlock_id, key.id)
        _show_keys(client, [key], as_json, [found])
    if stranded_app_key(key):
        typer.echo(STRANDED_WARNING.format(what=repr(key.name)), err=True)


@keys_app.command("edit")
def keys_edit(
    lock: LockOption,
    key: KeyArgument,
    name: Annotated[str | None, typer.Option("--name", help="A new name")] = None,
    code: CodeOption = None,
    from_: FromOption = None,
    until: UntilOption = None,
    days: DaysOption = None,
    time_: TimeOption = None,
    remote: Annotated[
        bool | None, typer.Option("--remote/--no-remote", help="Allow remote use or not")
    ] = None,
    wait: WaitOption = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Change a key: only the options given change."""
    from keyhouse.rules.cli_input import check_date_order

    number = _code(code)
    with api(url, token) as client:
        found = find_lock(client, lock)
        fields = _restrictions(lock_timezone(found), from_, until, days, time_)
        if name is not None:
            fields["name"] = name
        if number is not None:
            fields["code"] = number
        if remote is not None:
            fields["remote_allowed"] = remote
        if not fields:
            fail("nothing to change: give --name, --from, --until, --days, --time or --code", 2)
        target = find_key(client, found, key)
        _usage(
            lambda: check_date_order(
                lock_timezone(found),
                fields.get("allowed_from_date", target.allowed_from_date),
                fields.get("allowed_until_date", target.allowed_until_date),
                from_,
                until,
            )
        )
        client.update_key(found.smartlock_id, target.id, **fields)
        _after_change(client, found, target.id, wait, as_json)


def _after_change(client: Client, lock: Smartlock, key_id: str, wait: bool, as_json: bool) -> None:
    if wait:
        changed = client.wait_for_key(lock.smartlock_id, key_id)
    else:
        changed = client.get_key(lock.smartlock_id, key_id)
    _show_keys(client, [changed], as_json, [lock])


def _set_enabled(
    lock: str,
    key: str,
    enabled: bool,
    wait: bool,
    as_json: bool,
    url: str | None,
    token: str | None,
) -> None:
    with api(url, token) as client:
        found = find_lock(client, lock)
        target = find_key(client, found, key)
        client.update_key(found.smartlock_id, target.id, enabled=enabled)
        _after_change(client, found, target.id, wait, as_json)


@keys_app.command("disable")
def keys_disable(
    lock: LockOption,
    key: KeyArgument,
    wait: WaitOption = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Disable a key (it stays on the lock but opens nothing)."""
    _set_enabled(lock, key, False, wait, as_json, url, token)


@keys_app.command("enable")
def keys_enable(
    lock: LockOption,
    key: KeyArgument,
    wait: WaitOption = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Enable a disabled key."""
    _set_enabled(lock, key, True, wait, as_json, url, token)


@keys_app.command("rm")
def keys_rm(
    lock: LockOption,
    key: KeyArgument,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until the lock has removed the key")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Remove a key from its lock."""
    with api(url, token) as client:
        found = find_lock(client, lock)
        target = find_key(client, found, key)
        client.delete_key(found.smartlock_id, target.id)
        if wait:
            client.wait_until_deleted(found.smartlock_id, target.id)
    done = "removed" if wait else "is being removed"
    typer.echo(f"Key {target.name!r} ({target.id}) on {found.name} {done}.")


@keys_app.command("resend")
def keys_resend(
    lock: LockOption,
    key: KeyArgument,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Send a key's invite again, with a new guest link (the earlier link stops working)."""
    with api(url, token) as client:
        found = find_lock(client, lock)
        target = find_key(client, found, key)
        invite = client.resend_invite(found.smartlock_id, target.id)
    if as_json:
        typer.echo(invite.model_dump_json(by_alias=True, exclude_none=True, indent=2))
        return
    typer.echo(f"Invite for {target.name!r} on {found.name} to {invite.email}: {invite.status}.")


@keys_app.command("invites")
def keys_invites(
    lock: Annotated[str | None, typer.Option("--lock", help="With KEY: the key's lock")] = None,
    key: Annotated[str | None, typer.Argument(help="Only this key's invites")] = None,
    status: Annotated[str | None, typer.Option(help="queued, sent, failed or unconfirmed")] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Invites and the delivery of their e-mail (queued, sent, failed or unconfirmed, with the
    reason), and when the guest first used the link."""
    with api(url, token) as client:
        key_id = None
        if key is not None:
            if lock is None:
                fail("name the key's lock with --lock", EXIT_USAGE)
            key_id = find_key(client, find_lock(client, lock), key).id
        found = client.invites(auth_id=key_id, status=status)
    columns = [
        ("id", "id"),
        ("key", "auth_id"),
        ("to", "email"),
        ("status", "status"),
        ("attempts", "attempts"),
        ("created", "creation_date"),
        ("sent", "sent_date"),
        ("redeemed", "redeemed_date"),
        ("error", "last_error"),
    ]
    emit(found, columns, as_json, whole=("id", "key"), empty="no invites")


# --- log, lock, unlock ------------------------------------------------------------------------


def log(
    lock: Annotated[str | None, typer.Option("--lock", help="Only this lock (name or id)")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many entries")] = 20,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Show the activity log, newest first."""
    with api(url, token) as client:
        all_locks = client.list_smartlocks()
        lock_id = find_lock(client, lock).smartlock_id if lock else None
        entries = client.logs(lock_id, limit=limit)
    if as_json:
        emit(entries, [], True)
        return
    by_id = {item.smartlock_id: item for item in all_locks}
    rows = []
    for entry in entries:
        found = by_id.get(entry.smartlock_id)
        rows.append(
            _row(
                # in the lock's time, as the user gives times to `sim --at` and `--time`
                date=_in_zone(entry.date, lock_timezone(found) if found else "UTC"),
                lock=found.name if found else entry.smartlock_id,
                name=entry.name,
                action=_word(ACTIONS, entry.action),
                trigger=_word(TRIGGERS, entry.trigger),
                state=_word(LOG_STATES, entry.state),
                error=entry.error,
            )
        )
    columns = [
        ("date (lock's time)", "date"),
        *((title, title) for title in ("lock", "name", "action", "trigger", "state", "error")),
    ]
    emit(rows, columns, False, whole=("date (lock's time)",), empty="no entries")


# --- audit -----------------------------------------------------------------------------------

KEY_ID_LENGTH = 24


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if value not in ("(set)", "(changed)") else value
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_shown(v)}" for k, v in value.items()) + "}"
    return (
        "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    )


def change_text(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """What an audit event changed, in one line: ``name: 'A' → 'B'``, or what was made or gone."""
    if before and after:
        return "; ".join(
            f"{name} changed"
            if after.get(name) == "(changed)"
            else f"{name}: {_shown(before.get(name))} → {_shown(after.get(name))}"
            for name in after
        )
    shape = after or before or {}
    label = shape.get("name") or shape.get("email")
    verb = "" if after is None and before is None else ("new " if after else "was ")
    if label is not None:
        return f"{verb}{label!r}"
    return ", ".join(f"{name}: {_shown(value)}" for name, value in shape.items())


def audit(
    action: Annotated[
        str | None,
        typer.Option("--action", help="An action (key.update) or a family (key, user, lock…)"),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", help="Only this key: its id, or its name with --lock"),
    ] = None,
    lock: Annotated[
        str | None, typer.Option("--lock", help="Only changes to this lock (name or id)")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="From this day (YYYY-MM-DD, UTC) or date-time (RFC 3339)"),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=1000, help="How many events (newest first)")
    ] = 50,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Show the audit log: who changed keys, users, tokens and locks, when, and from where
    (needs a token with the scope 'account')."""
    with api(url, token) as client:
        lock_id: int | None = None
        found_lock = None
        if lock is not None:
            if lock.strip().isdigit():  # a removed lock is in the log too: its id is enough
                lock_id = int(lock.strip())
            else:
                found_lock = find_lock(client, lock)
                lock_id = found_lock.smartlock_id
        key_id = None
        if key is not None:
            if len(key) == KEY_ID_LENGTH and all(c in "0123456789abcdef" for c in key.lower()):
                key_id = key.lower()
            elif lock is None:
                fail("give the key's id, or its name with --lock", EXIT_USAGE)
            else:
                found_lock = found_lock or find_lock(client, lock)
                key_id = find_key(client, found_lock, key).id
        filters: dict[str, Any] = {"action": action, "since": since, "limit": limit}
        if key_id is not None:
            filters.update(target_type="key", target_id=key_id)
        elif lock_id is not None:
            filters["smartlock_id"] = lock_id
        found = client.audit(**{k: v for k, v in filters.items() if v is not None})
    if as_json:
        emit(found, [], True)
        return
    rows = [
        _row(
            id=event.id,
            date=event.date,
            who=event.token_name if event.actor == "token" else event.actor,
            action=event.action,
            target=f"{event.target_type} {event.target_id or ''}".strip(),
            change=change_text(event.before, event.after),
            source=event.source,
        )
        for event in found
    ]
    columns = [
        ("id", "id"),
        ("date (UTC)", "date"),
        ("who", "who"),
        ("action", "action"),
        ("target", "target"),
        ("change", "change"),
        ("from", "source"),
    ]
    emit(rows, columns, False, whole=("id", "date (UTC)"), empty="no events")


def _act(lock: str, what: str, url: str | None, token: str | None) -> None:
    with api(url, token) as client:
        found = find_lock(client, lock)
        getattr(client, what)(found.smartlock_id)
        after = client.get_smartlock(found.smartlock_id)
    state = _word(LOCK_STATES, after.state.state if after.state else None)
    typer.echo(f"{found.name}: {what} sent; the lock is {state or 'in an unknown state'}.")


def lock_command(
    lock: Annotated[str, typer.Argument(help="The lock: its name or smartlockId")],
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Lock a lock."""
    _act(lock, "lock", url, token)


def unlock_command(
    lock: Annotated[str, typer.Argument(help="The lock: its name or smartlockId")],
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Unlock a lock."""
    _act(lock, "unlock", url, token)
