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
    status: str = Field(description="queued, sent, or failed (see lastError)")
    attempts: int
    last_error: str | None = Field(None, description="The mail server's reply, for failures")
    message_id: str
    creation_date: ApiDateTime
    sent_date: ApiDateTime | None = None
    expiry_date: ApiDateTime = Field(description="The invite code is valid until then")
