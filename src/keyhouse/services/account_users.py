"""Account users: the people keys are given to."""

from __future__ import annotations

from collections.abc import Sequence

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.orm import Session

from keyhouse.errors import Conflict, NotFound, echo
from keyhouse.rules.dates import utcnow
from keyhouse.schemas.account_user import AccountUserCreate, AccountUserUpdate
from keyhouse.services import audit, auths
from keyhouse.services.caller import Caller
from keyhouse.services.problems import Problems
from keyhouse.store import repo
from keyhouse.store.models import AccountUser


def _normalized_email(problems: Problems, email: str | None) -> str | None:
    if email is None:
        problems.add("email", "required", "email is required: the address the invite goes to")
        return None
    shown = echo(email)
    try:
        # No SMTPUTF8: a local part (before the @) must be ASCII; a domain in another script is
        # kept in its ASCII (IDNA, xn--) form, the one every mail server takes.
        result = validate_email(email, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        reason = str(exc)
        if not email.split("@")[0].isascii():
            reason = (
                "the part before the @ has characters outside ASCII, which needs SMTPUTF8; "
                "Keyhouse sends mail without it, so use an address written in ASCII"
            )
        problems.add("email", "format", f"email {shown} is not a valid e-mail address: {reason}")
        return None
    return result.ascii_email or result.normalized


def _check_name(problems: Problems, name: str | None) -> None:
    if name is None or not name.strip():
        problems.add("name", "required", "name must not be empty: give the user a name")


def _email_taken(session: Session, caller: Caller, email: str, other_than: int | None) -> None:
    holder = repo.user_with_email(session, caller.account_id, email.lower(), other_than=other_than)
    if holder is not None:
        raise Conflict(
            f"the e-mail address {email} already belongs to account user "
            f"{holder.id} ({holder.name!r}): use that user, or another address",
            field="email",
            rule="unique_in_account",
        )


def user_not_found(account_user_id: int) -> NotFound:
    return NotFound(
        f"account user {account_user_id} does not exist in your account: list your users "
        "with GET /account/user",
        field="accountUserId",
    )


def create_user(session: Session, caller: Caller, body: AccountUserCreate) -> AccountUser:
    problems = Problems()
    email = _normalized_email(problems, body.email)
    _check_name(problems, body.name)
    problems.raise_if_any()
    assert email is not None
    _email_taken(session, caller, email, None)
    now = utcnow()
    row = AccountUser(
        account_id=caller.account_id,
        email=email,
        email_key=email.lower(),
        name=body.name.strip(),
        type=body.type,
        language=body.language.value if body.language else None,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    audit.record(session, caller, "user.create", "user", row.id, after=audit.user_view(row))
    return row


def list_users(
    session: Session,
    caller: Caller,
    *,
    email: str | None,
    offset: int,
    limit: int,
    after: int | None = None,
) -> Sequence[AccountUser]:
    email_key = email.strip().lower() if email else None
    return repo.list_users(
        session, caller.account_id, email_key=email_key, offset=offset, limit=limit, after=after
    )


def get_user(session: Session, caller: Caller, account_user_id: int) -> AccountUser:
    row = repo.user(session, caller.account_id, account_user_id)
    if row is None:
        raise user_not_found(account_user_id)
    return row


def update_user(
    session: Session, caller: Caller, account_user_id: int, body: AccountUserUpdate
) -> AccountUser:
    row = get_user(session, caller, account_user_id)
    sent = body.model_fields_set
    problems = Problems()
    email = row.email
    if "email" in sent:
        email = _normalized_email(problems, body.email) or row.email
    if "name" in sent:
        _check_name(problems, body.name)
    problems.raise_if_any()
    if email.lower() != row.email_key:
        _email_taken(session, caller, email, row.id)
    before = audit.user_view(row)
    row.email = email
    row.email_key = email.lower()
    if "name" in sent and body.name is not None:
        row.name = body.name.strip()
    if "language" in sent:
        row.language = body.language.value if body.language else None
    row.updated_at = utcnow()
    old, new = audit.changes(before, audit.user_view(row))
    if old:  # a request that changed nothing is no event
        audit.record(session, caller, "user.update", "user", row.id, before=old, after=new)
    session.flush()
    return row


def delete_user(session: Session, caller: Caller, account_user_id: int) -> auths.Outcome:
    """Delete the user; their keys are removed from the locks first (asynchronously).

    Each app key or keypad code of the user queues a ``key_deleted`` notice; the keys go before
    the user row, in this transaction, so the notices still find the user's name and address.
    """
    row = get_user(session, caller, account_user_id)
    outcome = auths.delete_keys_of_user(session, caller, account_user_id)
    audit.record(session, caller, "user.delete", "user", row.id, before=audit.user_view(row))
    session.delete(row)
    session.flush()
    return outcome
