"""The JSON shapes of the Nuki Web API, defined once, used by the server and the SDK."""

from keyhouse.schemas.account_user import AccountUser, AccountUserCreate, AccountUserUpdate
from keyhouse.schemas.auth import (
    SmartlockAuth,
    SmartlockAuthCreate,
    SmartlockAuthMultiUpdate,
    SmartlockAuthUpdate,
    SmartlocksAuthCreate,
)
from keyhouse.schemas.errors import ErrorBody
from keyhouse.schemas.smartlock import Smartlock, SmartlockConfig, SmartlockState

__all__ = [
    "AccountUser",
    "AccountUserCreate",
    "AccountUserUpdate",
    "ErrorBody",
    "Smartlock",
    "SmartlockAuth",
    "SmartlockAuthCreate",
    "SmartlockAuthMultiUpdate",
    "SmartlockAuthUpdate",
    "SmartlockConfig",
    "SmartlockState",
    "SmartlocksAuthCreate",
]
