"""Random secrets: API tokens, guest links and the browsers that hold them, and hashing."""

from __future__ import annotations

import hashlib
import secrets


def new_api_token() -> str:
    """Return a new API token: ``"kh_"`` followed by 256 random bits, URL-safe base64."""
    return "kh_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Return the SHA-256 hex digest of the UTF-8 encoded token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_link_secret() -> str:
    """Return the secret of a guest link: 256 random bits, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def new_device_secret() -> str:
    """Return the secret a browser keeps in its cookie once it redeemed a guest link: the
    same shape as a link's secret."""
    return new_link_secret()
