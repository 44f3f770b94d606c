"""Keyhouse's own shape beside the Nuki paths: one event of the audit log."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from keyhouse.schemas.base import ApiDateTime, ResponseShape


class AuditEvent(ResponseShape):
    id: int = Field(description="Grows with every event; pass it as 'before' for older ones")
    date: ApiDateTime = Field(description="When the change was committed")
    actor: str = Field(
        description="token (an API token: tokenId, tokenName), operator (the keyhouse CLI on "
        "the server), guest (a guest page) or system (the server itself, e.g. a drift repair)"
    )
    token_id: int | None = None
    token_name: str | None = None
    action: str = Field(
        description="What was done, e.g. key.create, key.update, key.delete, user.create, "
        "user.update, user.delete, invite.resend, invite.redeem, token.create, token.revoke, "
        "lock.add, lock.rename, lock.remove, lock.repair; on a lock driven through an "
        "upstream (Nuki's cloud), by the system at a drift check: key.adopt (a narrowing made "
        "at the upstream taken into Keyhouse: before/after the fields that changed; after null "
        "when the key was deleted there), key.restore (a widening or other change made at the "
        "upstream put back: before is the upstream's, after Keyhouse's), key.import (a key "
        "made at the upstream, listed with origin upstream)"
    )
    target_type: str = Field(description="key, user, lock or token")
    target_id: str | None = Field(None, description="The key's, user's, lock's or token's id")
    smartlock_id: int | None = Field(None, description="The lock the change concerns, if one")
    before: dict[str, Any] | None = Field(
        None,
        description="The thing before the change in its official shape (for an update only "
        "the fields that changed); null for a creation. Never a secret: a keypad code shows "
        'as "(set)" or "(changed)"',
    )
    after: dict[str, Any] | None = Field(
        None, description="The thing after the change, as 'before'; null for a deletion"
    )
    source: str | None = Field(
        None, description="The client's address, 'cli' for the operator's commands"
    )
