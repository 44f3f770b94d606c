"""Who is calling: the account and scopes a token resolved to, once, at the edge."""

from __future__ import annotations

from dataclasses import dataclass

ALL_SCOPES: tuple[str, ...] = (
    "account",
    "notification",
    "smartlock",
    "smartlock.readOnly",
    "smartlock.action",
    "smartlock.auth",
    "smartlock.config",
    "smartlock.log",
    "smartlock.create",
    "emulator",
)


@dataclass(frozen=True)
class Caller:
    account_id: int
    scopes: frozenset[str]
    token_id: int
    # For the audit log: the token's name, and the client's address (as the trusted-proxy
    # rule gives it), or "cli" for the operator's own commands.
    token_name: str = ""
    source: str | None = None
