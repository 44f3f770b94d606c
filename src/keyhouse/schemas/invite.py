"""Keyhouse's own shape beside the Nuki paths: an invite and the delivery of its e-mail."""

from __future__ import annotations

from pydantic import Field

from keyhouse.schemas.base import ApiDateTime, ResponseShape


class InviteStatus(ResponseShape):
    id: int
    auth_id: str = Field(description="The key's id (24 hex digits)")
    smartlock_id: int | None = None
    account_user_id: int | None = None
    email: str
    status: str = Field(
        description="queued, sent, failed (see lastError), or unconfirmed: the sender lost the "
        "mail server while handing the message over, so it may have arrived; it is not sent "
        "again by itself"
    )
    attempts: int
    last_error: str | None = Field(None, description="The mail server's reply, for failures")
    message_id: str
    creation_date: ApiDateTime
    sent_date: ApiDateTime | None = None
    expiry_date: ApiDateTime = Field(
        description="Until then the guest link can be redeemed; once redeemed it lives as long "
        "as the key, in the browser that redeemed it"
    )
    redeemed_date: ApiDateTime | None = Field(
        None, description="When the guest link was first used to open the door"
    )
