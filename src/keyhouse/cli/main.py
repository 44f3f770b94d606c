"""keyhouse [--data DIR] serve | admin …  (heavy imports happen inside the commands)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Annotated

import typer

from keyhouse.cli import commands, invite
from keyhouse.cli.common import Profile
from keyhouse.cli.sim import sim_app
from keyhouse.cpu import pin_to_one_cpu

if TYPE_CHECKING:
    import click

    from keyhouse.settings import Settings


def _flag_type(param: typer.core.TyperOption, ctx: click.Context) -> str | None:
    """Typer's Rich help shows ``<bool>`` after plain flags (``--json <bool>``), as if they took
    a value; its plain help does not. Show no type for a flag, as the plain help does."""
    if param.is_flag and not param.count:
        return None
    return _typer_type(param, ctx)


_typer_type = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]


def _version(value: bool) -> None:
    if value:
        from keyhouse import __version__

        typer.echo(f"keyhouse {__version__}")
        raise typer.Exit()


app = typer.Typer(
    help="Keyhouse: a self-hosted server that speaks the Nuki Web API.",
    no_args_is_help=True,
    add_completion=True,
    # An unexpected error must not print the locals of every frame: they hold tokens.
    pretty_exceptions_show_locals=False,
)
admin_app = typer.Typer(help="Manage accounts, tokens and locks (server running or not).")
account_app = typer.Typer(help="Accounts.")
token_app = typer.Typer(help="API tokens.")
lock_app = typer.Typer(help="Virtual locks.")
admin_app.add_typer(account_app, name="account")
admin_app.add_typer(token_app, name="token")
admin_app.add_typer(lock_app, name="lock")
upstream_app = typer.Typer(help="Link an account to a Nuki Web account (Nuki's cloud).")
admin_app.add_typer(upstream_app, name="upstream")
db_app = typer.Typer(help="The database's schema.")
admin_app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")
app.add_typer(sim_app, name="sim")
commands.register(app)
invite.register(app)


class State:
    data: Path | None = None


def settings() -> Settings:
    from pydantic import ValidationError

    from keyhouse.settings import Settings

    try:
        return Settings(data=State.data) if State.data is not None else Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        _fail(str(first.get("msg", exc)).removeprefix("Value error, "), code=2)
        raise


@app.callback()
def main(
    profile: Annotated[
        str | None,
        typer.Option("--profile", help="The saved server profile to use (see 'keyhouse login')"),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            envvar="KEYHOUSE_DATA",
            help="Data folder (SQLite file, mail/). Default: the user's data directory.",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    State.data = data
    Profile.name = profile


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def store_missing(config: Settings) -> str | None:
    """Why ``config`` names no existing store (one sentence), or None if it holds one.

    Looked at without creating anything: the SQLite file must exist; a database URL must
    hold Keyhouse's tables (its Alembic version table).
    """
    if not config.database_url:
        path = config.data / "keyhouse.db"
        if path.is_file():
            return None
        return (
            f"no Keyhouse store in {config.data} (there is no {path.name}): give the data "
            "folder with --data DIR (before the command) or KEYHOUSE_DATA; 'keyhouse serve' "
            "or 'keyhouse admin account create' makes a new one"
        )
    from sqlalchemy import create_engine, inspect

    engine = create_engine(config.database_url)
    try:
        if inspect(engine).has_table("alembic_version"):
            return None
    except Exception as exc:  # any driver's failure to connect
        return f"can't open the database at KEYHOUSE_DATABASE_URL: {exc.__class__.__name__}"
    finally:
        engine.dispose()
    return (
        "the database at KEYHOUSE_DATABASE_URL holds no Keyhouse store: check the URL; "
        "'keyhouse admin db upgrade' makes a new one"
    )


def _runtime(create: bool = False, background: bool = True):  # type: ignore[no-untyped-def]
    """The store of the data folder, ready to use. Only commands that create things
    (``serve``, ``admin account create``) may start a new SQLite store; the others refuse a
    data folder without one, naming where they looked (an empty table would hide the mistake).

    A SQLite file is brought up to date here; a PostgreSQL schema only by ``admin db upgrade``
    (many processes share it): an older one is refused with the sentence that names it.
    """
    from keyhouse.runtime import Runtime
    from keyhouse.store.database import SchemaNotCurrent

    config = settings()
    if not create:
        missing = store_missing(config)
        if missing is not None:
            _fail(missing, code=2)
    runtime = Runtime(config, background=background)
    try:
        runtime.db.ensure_schema()
    except SchemaNotCurrent as exc:
        runtime.db.dispose()
        _fail(exc.message, code=2)
    return runtime


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database to the newest schema (or create it); prints the revision."""
    # The only command that changes a PostgreSQL schema: run once per update, before the new
    # version's 'serve' and 'worker' processes start (they refuse an older schema).
    from keyhouse.store.database import Database
    from keyhouse.store.files import secure_data_folder

    config = settings()
    if not config.database_url:
        secure_data_folder(config.data)  # the SQLite file's folder, 0700
    db = Database(config.resolved_database_url)
    try:
        before = db.revision()
        db.migrate()
        after = db.revision()
    except Exception as exc:  # any driver's failure to connect or to migrate
        _fail(f"can't upgrade the database: {exc.__class__.__name__}: {exc}".splitlines()[0])
        raise
    finally:
        db.dispose()
    where = "KEYHOUSE_DATABASE_URL" if config.database_url else str(config.data / "keyhouse.db")
    if before == after:
        typer.echo(f"The schema of {where} is up to date (revision {after}).")
    else:
        typer.echo(f"Upgraded the schema of {where} from {before or 'nothing'} to {after}.")
    typer.echo(after)


SQLITE_ONE_PROCESS = (
    "--workers {n} needs PostgreSQL: SQLite lets one process write at a time and tells the "
    "other processes nothing of a change, so more API processes on one file would only queue "
    "behind each other; set KEYHOUSE_DATABASE_URL=postgresql+psycopg://… (then 'keyhouse admin "
    "db upgrade') or leave out --workers"
)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8080,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="API processes on the one port (more than 1 needs PostgreSQL)",
        ),
    ] = 1,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            help="Also bring locks up to date and send mail here; --no-worker leaves that to "
            "'keyhouse worker' processes",
        ),
    ] = True,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log a line per request (off by default: about a tenth of the CPU of a "
            "cached listing; errors are logged either way)",
        ),
    ] = False,
) -> None:
    """Start the server; on first start, create a demo account, two virtual locks and a token."""
    import os

    import uvicorn

    from keyhouse.app import configure_logging, create_app
    from keyhouse.services.admin import seed_demo

    configure_logging()
    if workers > 1 and not settings().database_url:
        _fail(SQLITE_ONE_PROCESS.format(n=workers), code=2)
    # Checked (SQLite: upgraded) and seeded once, here; the API processes only open it.
    runtime = _runtime(create=True, background=worker)
    config = runtime.settings
    demo = seed_demo(runtime.db, runtime.link)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown_host}:{port}"
    if not config.public_url:
        config.public_url = base  # guest links in invites point here; set it behind a proxy
    typer.echo(f"Keyhouse data folder: {config.data}")
    if demo is not None:
        typer.echo("First start: created a demo account with two virtual locks:")
        for lock_id in demo.lock_ids:
            typer.echo(f"  smartlockId {lock_id}")
        typer.echo("Your API token (shown once, keep it):")
        typer.echo(f"  {demo.token}")
        typer.echo(f"Try: curl -H 'Authorization: Bearer {demo.token}' {base}/smartlock")
    else:
        typer.echo(_token_hint(runtime, config))
    from keyhouse.client import KeyhouseClientError

    try:
        typer.echo(local_profile(config, base, demo.token if demo is not None else None))
    except KeyhouseClientError as exc:  # a broken config file must not stop the server
        typer.echo(f"Profile 'local' not saved: {exc}")
    mail = config.smtp_url or f"files in {config.mail_dir}"
    typer.echo(f"Invite mail goes to: {mail}")
    typer.echo(f"Guest links in invites start with: {config.guest_base_url}/guest/")
    typer.echo(f"Swagger UI: {base}/docs")
    proxies = config.proxy_options
    believed = proxies["forwarded_allow_ips"] or "no proxy (KEYHOUSE_TRUSTED_PROXIES is empty)"
    typer.echo(f"X-Forwarded-For is believed from: {believed}")
    if not worker:
        typer.echo(
            "No worker in this server (--no-worker): keys reach their locks and mail goes out "
            "only while a 'keyhouse worker' runs on the same store."
        )
    if workers == 1:
        app_ = create_app(runtime=runtime)
        cpu = pin_to_one_cpu(config.cpu_pinning, config.data)
        if cpu is not None:
            typer.echo(f"Runs on CPU {cpu} (KEYHOUSE_CPU_PINNING=off to use every CPU).")
        uvicorn.run(
            app_,
            host=host,
            port=port,
            log_level="info",
            access_log=access_log,
            **proxies,
        )
        return
    if not config.redis_url:
        typer.echo(
            f"Rate limits count per process: without KEYHOUSE_REDIS_URL each of the {workers} "
            f"API processes allows the full limit, so a client gets up to {workers} times it."
        )
    runtime.db.dispose()
    # Each API process builds the app from the environment alone: hand it what this command
    # was told (--data) or worked out (the public URL) besides the KEYHOUSE_* variables.
    os.environ["KEYHOUSE_DATA"] = str(config.data)
    os.environ["KEYHOUSE_PUBLIC_URL"] = config.public_url
    if config.database_url:
        os.environ["KEYHOUSE_DATABASE_URL"] = config.database_url
    factory = "app_from_environment" if worker else "api_from_environment"
    uvicorn.run(
        f"keyhouse.app:{factory}",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level="info",
        access_log=access_log,
        **proxies,
    )


@app.command("worker")
def worker_command() -> None:
    """Bring keys to their locks and send mail, without the API (see 'serve --no-worker')."""
    # As many as you like on one PostgreSQL database: leases give each lock one reconciler at
    # a time, and the outbox hands each mail to one sender. Stops on SIGTERM or Ctrl-C.
    import os
    import signal
    import threading

    from keyhouse.app import configure_logging

    configure_logging()
    runtime = _runtime()
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    config = runtime.settings
    store = "KEYHOUSE_DATABASE_URL" if config.database_url else str(config.data / "keyhouse.db")
    try:
        pin_to_one_cpu(config.cpu_pinning, config.data)
        runtime.start()
        mail = config.smtp_url or f"files in {config.mail_dir}"
        typer.echo(
            f"Keyhouse worker (pid {os.getpid()}) on {store}: bringing locks up to date, "
            f"invite mail to {mail}; stop with Ctrl-C or SIGTERM."
        )
        while not stopping.wait(1.0):
            pass
    finally:
        runtime.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    typer.echo("Keyhouse worker stopped.")


def _token_hint(runtime, config: Settings) -> str:  # type: ignore[no-untyped-def]
    """What a later start says about tokens, which are shown only once."""
    from sqlalchemy import select

    from keyhouse.store.models import Account

    with runtime.db.session() as session:
        first = session.scalar(select(Account.id).order_by(Account.id))
    data = "" if config.database_url else f"--data {config.data} "
    return (
        "API tokens are shown only when made (the demo token at the first start); "
        f"'keyhouse {data}admin token create --account {first or 'ID'}' makes another."
    )


def local_profile(config: Settings, base: str, token: str | None) -> str:
    """Keep the config file's ``local`` profile in step with this server; say what happened.

    A new store's demo token is saved as ``local`` unless ``local`` belongs to another data
    folder (then it is kept, and the line says how to change it). A profile of this data
    folder follows the server to a new address.
    """
    from keyhouse.client.config import default_profile_name, load_profile, save_profile

    here = config.database_url or str(config.data.resolve())
    known = load_profile("local")
    ours = known is not None and known.data == here
    if token is not None and (known is None or ours):
        default = default_profile_name() in (None, "local")
        saved = save_profile("local", base, token, make_default=default, data_folder=here)
        verb = "Updated" if known is not None else "Saved"
        hint = "keyhouse locks" if default else "keyhouse --profile local locks"
        return f"{verb} profile 'local' in {saved} with the demo token: try '{hint}'."
    if known is not None and ours:
        if known.url != base and known.token:
            save_profile("local", base, known.token, make_default=False, data_folder=here)
            return f"Profile 'local' now points at {base} (it pointed at {known.url})."
        return f"Profile 'local' points at this server ({base})."
    if known is None:
        return (
            "No profile 'local' for this server: save one with 'keyhouse login --name local "
            f"--url {base} --token TOKEN'."
        )
    where = f"{known.url}, data folder {known.data}" if known.data else f"{known.url}"
    change = f"keyhouse login --name local --url {base} --token {token or 'TOKEN'}"
    return f"Profile 'local' kept: it points at {where}; '{change}' to change it."


def _admin(action, create: bool = False):  # type: ignore[no-untyped-def]
    """Run an admin action in one transaction; print its errors as one sentence."""
    from keyhouse.errors import KeyhouseError

    runtime = _runtime(create)
    try:
        with runtime.db.session() as session:
            return action(session, runtime)
    except KeyhouseError as exc:
        _fail(exc.message)
    finally:
        runtime.db.dispose()


@account_app.command("create")
def account_create(
    email: Annotated[str, typer.Option(help="The account owner's e-mail")],
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
) -> None:
    """Create an account; prints its id alone on the last line."""
    from keyhouse.services.admin import create_account

    account_id = _admin(lambda s, _r: create_account(s, email=email, name=name).id, create=True)
    typer.echo(f"Created account {account_id} ({email}).")
    typer.echo(account_id)


@account_app.command("list")
def account_list() -> None:
    """Every account in the data folder, with its locks and tokens."""
    from keyhouse.cli.common import emit
    from keyhouse.services.admin import list_accounts

    def rows(session, _runtime):  # type: ignore[no-untyped-def]
        return [
            SimpleNamespace(**{**vars(row), "created": row.created_at})
            for row in list_accounts(session)
        ]

    columns = [(title, title) for title in ("id", "email", "name", "locks", "tokens", "created")]
    emit(_admin(rows), columns, False, empty="no accounts")


@token_app.command("create")
def token_create(
    account: Annotated[int, typer.Option(help="Account id")],
    scope: Annotated[
        list[str] | None, typer.Option(help="A scope (repeatable); default: all scopes")
    ] = None,
    name: Annotated[str, typer.Option(help="What the token is for")] = "api token",
    expires: Annotated[
        str | None,
        typer.Option(help="When it stops working: 90min, 12h, 30d, 8w or a date (2027-01-31)"),
    ] = None,
) -> None:
    """Create an API token; prints it alone on the last line (it is stored only as a hash)."""
    from keyhouse.rules.cli_input import parse_expiry
    from keyhouse.rules.dates import utcnow
    from keyhouse.services.admin import create_token

    expires_at = None
    if expires is not None:
        try:
            expires_at = parse_expiry(expires, utcnow())
        except ValueError as exc:
            _fail(str(exc), code=2)
    token = _admin(
        lambda s, _r: create_token(
            s, account_id=account, scopes=scope or (), name=name, expires_at=expires_at
        )
    )
    until = f", valid until {_moment(expires_at)}" if expires_at else ""
    typer.echo(f"Created token {name!r} for account {account}{until}; it is shown only this once:")
    typer.echo(token)


def _moment(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


@token_app.command("list")
def token_list(
    account: Annotated[int, typer.Option(help="Account id")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """The account's tokens: id, name, scopes, created, last used, expiry, status (never the
    secret: only its hash is stored)."""
    import json

    from keyhouse.cli.common import emit
    from keyhouse.rules.dates import utcnow
    from keyhouse.services.admin import list_tokens

    found = _admin(lambda s, _r: list_tokens(s, account))
    now = utcnow()
    if as_json:
        from keyhouse.schemas.token import TokenInfo

        shapes = [
            TokenInfo.of(t, now).model_dump(mode="json", by_alias=True, exclude_none=True)
            for t in found
        ]
        typer.echo(json.dumps(shapes, indent=2))
        return
    rows = [
        SimpleNamespace(
            id=t.id,
            name=t.name,
            scopes=" ".join(t.scopes),
            created=_moment(t.created_at),
            last_used=_moment(t.last_used_at) or "never",
            expires=_moment(t.expires_at) or "never",
            status=t.status(now)
            + (f" {_moment(t.revoked_at)}" if t.revoked_at is not None else ""),
        )
        for t in found
    ]
    columns = [
        ("id", "id"),
        ("name", "name"),
        ("scopes", "scopes"),
        ("created", "created"),
        ("last used", "last_used"),
        ("expires", "expires"),
        ("status", "status"),
    ]
    emit(rows, columns, False, whole=("id",), empty=f"account {account} has no tokens")


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(metavar="ID", help="The token's id (see 'list')")],
) -> None:
    """Revoke a token at once: every request with it then gets 401 saying it was revoked."""
    from keyhouse.rules.dates import utcnow
    from keyhouse.services.admin import revoke_token

    started = utcnow()
    token = _admin(lambda s, _r: revoke_token(s, token_id))
    assert token.revoked_at is not None
    if token.revoked_at < started:
        typer.echo(
            f"Token {token.id} ({token.name!r}) was already revoked at {_moment(token.revoked_at)}."
        )
    else:
        typer.echo(f"Revoked token {token.id} ({token.name!r}) of account {token.account_id}.")


@lock_app.command("add")
def lock_add(
    account: Annotated[int, typer.Option(help="Account id")],
    name: Annotated[str, typer.Option(help="The lock's name")],
    keypad: Annotated[bool, typer.Option("--keypad", help="Pair a keypad")] = False,
    type: Annotated[
        int, typer.Option("--type", help="0 keyturner, 2 opener, 3 smartdoor, 4 SL3/4")
    ] = 4,
    timezone: Annotated[str, typer.Option(help="The lock's IANA time zone")] = "Europe/Vienna",
) -> None:
    """Add a virtual lock; prints its smartlockId alone on the last line."""
    from keyhouse.services.admin import add_lock

    lock_id = _admin(
        lambda s, r: (
            add_lock(
                s,
                r.link,
                account_id=account,
                name=name,
                keypad=keypad,
                type_=type,
                timezone=timezone,
            ).id
        )
    )
    typer.echo(f"Added virtual lock {name!r} to account {account}.")
    typer.echo(lock_id)


@upstream_app.command("link")
def upstream_link(
    account: Annotated[int, typer.Option(help="The Keyhouse account id")],
    token: Annotated[
        str,
        typer.Option(
            envvar="NUKI_API_TOKEN",
            help="The Nuki Web API token (or NUKI_API_TOKEN, which keeps it out of ps)",
            show_default=False,
        ),
    ],
    url: Annotated[
        str | None,
        typer.Option(help="The upstream's URL [default: KEYHOUSE_UPSTREAM_URL, api.nuki.io]"),
    ] = None,
) -> None:
    """Import the Nuki Web account's locks (same smartlockIds) and keep its token, encrypted.
    Again: refreshes. Prints the number of locks imported alone on the last line."""
    from keyhouse.services import upstream

    config = settings()
    target = url or config.upstream_url
    runtime = _runtime()
    from keyhouse.errors import KeyhouseError
    from keyhouse.store.secret_box import SecretKeyMissing

    try:
        result = upstream.link(
            runtime.db,
            runtime.secrets,
            account_id=account,
            token=token,
            url=target,
            timeout_seconds=config.upstream_timeout_seconds,
        )
    except KeyhouseError as exc:
        _fail(exc.message)
        raise
    except SecretKeyMissing as exc:
        _fail(str(exc))
        raise
    finally:
        runtime.db.dispose()
    removed = f", {result.removed} no longer listed there (kept, marked)" if result.removed else ""
    typer.echo(
        f"Linked account {account} to {target}: {result.imported} locks "
        f"({result.added} new, {result.refreshed} refreshed{removed})."
    )
    typer.echo(result.imported)


@upstream_app.command("unlink")
def upstream_unlink(account: Annotated[int, typer.Option(help="The Keyhouse account id")]) -> None:
    """End the link: the stored token is deleted; imported locks stay, their keys wait."""
    from keyhouse.services import upstream

    kept = _admin(lambda s, _r: upstream.unlink(s, account))
    typer.echo(
        f"Unlinked account {account}; its token is deleted. {kept} imported locks stay in the "
        "account (their keys wait until it is linked again)."
    )


@upstream_app.command("status")
def upstream_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Each link: account, URL, locks, last contact, last error, calls used (never the token)."""
    import json

    from keyhouse.services import upstream

    found = _admin(lambda s, _r: upstream.status(s))
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "account": row.account_id,
                        "url": row.url,
                        "linked": _moment(row.linked_at),
                        "lastContact": _moment(row.last_contact_at) or None,
                        "lastError": row.last_error,
                        "calls": row.calls,
                        "locks": row.locks,
                        "removedUpstream": row.removed,
                    }
                    for row in found
                ],
                indent=2,
            )
        )
        return
    if not found:
        typer.echo("no account is linked to Nuki's cloud")
        return
    for row in found:
        removed = f" ({row.removed} no longer listed upstream)" if row.removed else ""
        typer.echo(f"account {row.account_id}: {row.url}, linked {_moment(row.linked_at)}")
        typer.echo(f"  locks: {row.locks}{removed}")
        typer.echo(f"  last contact: {_moment(row.last_contact_at) or 'never'}")
        typer.echo(f"  last error: {row.last_error or 'none'}")
        typer.echo(f"  calls used: {row.calls}")


mail_app = typer.Typer(help="Invite e-mail in the outbox.")
admin_app.add_typer(mail_app, name="mail")


@mail_app.command("list")
def mail_list(
    status: Annotated[
        str | None, typer.Option(help="pending, sending, sent, failed or unconfirmed")
    ] = None,
) -> None:
    """Every e-mail in the outbox (all accounts), newest first, with its delivery status."""
    statuses = ("pending", "sending", "sent", "failed", "unconfirmed")
    if status is not None and status not in statuses:
        _fail(f"--status {status!r} is not one of {', '.join(statuses)}", code=2)
    from rich.table import Table
    from sqlalchemy import select

    from keyhouse.cli.common import console
    from keyhouse.store.models import OutboxMessage

    def rows(session, _runtime):  # type: ignore[no-untyped-def]
        query = select(OutboxMessage).order_by(OutboxMessage.id.desc())
        if status is not None:
            query = query.where(OutboxMessage.status == status)
        return list(session.scalars(query))

    found = _admin(rows)
    if not found:
        typer.echo("no mail in the outbox" + (f" with status {status}" if status else ""))
        return
    table = Table(show_edge=False, pad_edge=False)
    for title in ("id", "account", "kind", "to", "subject", "status", "attempts", "sent", "error"):
        table.add_column(title)
    for row in found:
        sent = row.sent_at.strftime("%Y-%m-%d %H:%M") if row.sent_at else ""
        table.add_row(
            str(row.id),
            str(row.account_id),
            row.kind,
            row.recipient,
            row.subject,
            row.status,
            str(row.attempts),
            sent,
            row.last_error or "",
        )
    console().print(table)


def _virtual_lock(session, text: str) -> int:  # type: ignore[no-untyped-def]
    """The smartlockId of the virtual lock named ``text`` (its smartlockId or name)."""
    from sqlalchemy import func, select

    from keyhouse.store.models import SimulatedLock, Smartlock

    if text.strip().isdigit() and session.get(SimulatedLock, int(text)) is not None:
        return int(text)
    query = (
        select(Smartlock.id, Smartlock.account_id)
        .join(SimulatedLock, SimulatedLock.smartlock_id == Smartlock.id)
        .where(func.lower(Smartlock.name) == text.strip().lower())
    )
    found = session.execute(query).all()
    if len(found) == 1:
        return int(found[0].id)
    if not found:
        _fail(
            f"no virtual lock {text!r} in {settings().data}: give its name or smartlockId "
            "(list them with 'keyhouse locks')",
            code=2,
        )
    ids = ", ".join(f"{row.id} (account {row.account_id})" for row in found)
    _fail(f"{len(found)} virtual locks are called {text!r}: {ids}; name it by its smartlockId", 2)
    raise AssertionError("unreachable")


@lock_app.command("set")
def lock_set(
    lock: Annotated[str, typer.Argument(help="The lock: its name or smartlockId")],
    online: Annotated[
        bool | None, typer.Option("--online/--offline", help="Reachable or not")
    ] = None,
    latency_ms: Annotated[
        int | None, typer.Option("--latency-ms", min=0, help="Delay of every device call")
    ] = None,
    fault: Annotated[
        str | None,
        typer.Option(help="busy, motorBlocked, codeExists, full, or none to clear"),
    ] = None,
) -> None:
    """Change a virtual lock's emulation (the same as POST /emulator/smartlock/{id})."""
    from keyhouse.devices.simulator import FAULTS

    changes: dict[str, object] = {}
    if online is not None:
        changes["online"] = online
    if latency_ms is not None:
        changes["latency_ms"] = latency_ms
    if fault is not None:
        if fault != "none" and fault not in FAULTS:
            _fail(f"fault {fault!r} is not one of {', '.join(FAULTS)} or none", code=2)
        changes["fault"] = None if fault == "none" else fault

    runtime = _runtime()
    try:
        # Find the lock in a read session, then change it: the simulator writes in a session
        # of its own, and two write sessions of one thread would wait for each other.
        with runtime.db.read() as session:
            lock_id = _virtual_lock(session, lock)
        state = runtime.link.configure(lock_id, changes)
    finally:
        runtime.db.dispose()
    word = "online" if state.online else "offline"
    typer.echo(
        f"smartlock {lock_id}: {word}, latency {state.latency_ms} ms, fault {state.fault or 'none'}"
    )


@lock_app.command("rename")
def lock_rename(
    lock: Annotated[str, typer.Argument(help="The lock: its name or smartlockId")],
    name: Annotated[str, typer.Option("--name", help="The new name")],
) -> None:
    """Give a virtual lock a new name (names are how the CLI finds a lock, so they stay unique
    in their account)."""
    from keyhouse.services.admin import rename_lock
    from keyhouse.store.models import Smartlock

    new = name.strip()
    if not new or len(new) > 200:
        _fail("--name must have 1 to 200 characters", code=2)

    def rename(session, _runtime):  # type: ignore[no-untyped-def]
        lock_id = _virtual_lock(session, lock)
        old_name = session.get(Smartlock, lock_id).name
        rename_lock(session, lock_id, new)
        return lock_id, old_name

    lock_id, old_name = _admin(rename)
    typer.echo(f"Renamed smartlock {lock_id} from {old_name!r} to {new!r}.")
    typer.echo(lock_id)


@lock_app.command("remove")
def lock_remove(
    lock: Annotated[str, typer.Argument(help="The lock: its name or smartlockId")],
    with_keys: Annotated[
        bool,
        typer.Option("--with-keys", help="Remove its keys too (their guest links stop working)"),
    ] = False,
) -> None:
    """Remove a virtual lock with its log; refused while it has keys, unless --with-keys."""
    from keyhouse.services.admin import remove_lock

    def remove(session, _runtime):  # type: ignore[no-untyped-def]
        lock_id = _virtual_lock(session, lock)
        return lock_id, remove_lock(session, lock_id, with_keys=with_keys)

    lock_id, keys = _admin(remove)
    typer.echo(f"Removed smartlock {lock_id} and {keys} key(s).")
    typer.echo(lock_id)


GLOBAL_OPTIONS = ("--data", "--profile")


def misplaced_global_option(argv: list[str]) -> str | None:
    """The sentence for a global option written after the command (``serve --data D``), or None.

    Click would answer "No such option: --data" without saying that the option exists and
    belongs before the command.
    """
    command_seen = False
    for index, word in enumerate(argv):
        if word == "--":
            return None
        name = word.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            if not command_seen:
                continue
            command = " ".join(w for w in argv[:index] if not w.startswith("-"))
            return (
                f"{name} is an option of keyhouse itself: put it before the command, "
                f"e.g. 'keyhouse {name} VALUE {command} …'"
            )
        if not word.startswith("-") and not (index > 0 and argv[index - 1] in GLOBAL_OPTIONS):
            command_seen = True
    return None


def run() -> None:
    import sys

    message = misplaced_global_option(sys.argv[1:])
    if message is not None:
        typer.echo(f"error: {message}", err=True)
        raise SystemExit(2)
    app()
