"""Keyhouse SDK: typed clients of the Nuki Web API (Keyhouse or api.nuki.io).

>>> from keyhouse.client import Client
>>> with Client() as client:          # token/URL from args, env or the config profile
...     locks = client.list_smartlocks()

Answers are the pydantic models of :mod:`keyhouse.schemas`; errors are typed
(:mod:`keyhouse.client.errors`).
"""

from keyhouse.client.aio import AsyncClient
from keyhouse.client.config import Profile, load_profile, save_profile
from keyhouse.client.errors import (
    AuthError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidArgument,
    KeyhouseAPIError,
    KeyhouseClientError,
    Locked,
    MissingToken,
    NotFound,
    RateLimited,
    ServerError,
    SyncFailed,
    ValidationError,
    WaitTimeout,
)
from keyhouse.client.sync import DEFAULT_URL, Client, RetryPolicy
from keyhouse.schemas import AccountUser, Smartlock, SmartlockAuth
from keyhouse.schemas.audit import AuditEvent
from keyhouse.schemas.log import DoorDecision, EmulatorLock, SmartlockLog

__all__ = [
    "DEFAULT_URL",
    "AccountUser",
    "AsyncClient",
    "AuditEvent",
    "AuthError",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "DoorDecision",
    "EmulatorLock",
    "Forbidden",
    "InvalidArgument",
    "KeyhouseAPIError",
    "KeyhouseClientError",
    "Locked",
    "MissingToken",
    "NotFound",
    "Profile",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "Smartlock",
    "SmartlockAuth",
    "SmartlockLog",
    "SyncFailed",
    "ValidationError",
    "WaitTimeout",
    "load_profile",
    "save_profile",
]
