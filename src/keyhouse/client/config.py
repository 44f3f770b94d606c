"""Profiles of the CLI's config file, shared with the SDK.

The file is TOML at ``platformdirs.user_config_dir("keyhouse")/config.toml`` (or the path in
the environment variable ``KEYHOUSE_CONFIG``)::

    default = "home"

    [profiles.home]
    url = "http://127.0.0.1:8080"
    token = "kh_…"

It holds tokens, so it is written with file mode 0600.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

__all__ = [
    "CONFIG_ENV",
    "Profile",
    "config_path",
    "default_profile_name",
    "load_profile",
    "save_profile",
]

CONFIG_ENV = "KEYHOUSE_CONFIG"


@dataclass(frozen=True)
class Profile:
    """A named server and the token to use there."""

    name: str
    url: str | None
    token: str | None
    data: str | None = None  # the data folder (or database) of a local server's profile


def config_path() -> Path:
    """The config file: ``$KEYHOUSE_CONFIG``, else the user config dir's ``config.toml``."""
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("keyhouse")) / "config.toml"


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        from keyhouse.client.errors import KeyhouseClientError

        raise KeyhouseClientError(
            f"the config file {path} is not valid TOML ({exc}): fix it, or remove it and log "
            "in again with 'keyhouse login'"
        ) from None


def load_profile(name: str | None = None) -> Profile | None:
    """The profile ``name`` (default: the file's ``default``), or None if there is none."""
    data = _read(config_path())
    profiles = data.get("profiles")
    if not isinstance(profiles, dict):
        return None
    if name is None:
        name = data.get("default")
        if not isinstance(name, str):
            return None
    entry = profiles.get(name)
    if not isinstance(entry, dict):
        return None
    url, token, data_ = entry.get("url"), entry.get("token"), entry.get("data")
    return Profile(
        name,
        url if isinstance(url, str) and url else None,
        token if isinstance(token, str) and token else None,
        data_ if isinstance(data_, str) and data_ else None,
    )


def default_profile_name() -> str | None:
    """The name of the config file's default profile, if it has one."""
    name = _read(config_path()).get("default")
    return name if isinstance(name, str) else None


def save_profile(
    name: str, url: str, token: str, make_default: bool = True, data_folder: str | None = None
) -> Path:
    """Add or replace profile ``name`` (and make it the default); returns the file's path.

    ``data_folder`` notes the data folder of a server on this machine (``keyhouse serve`` sets it).
    Other profiles and settings are kept. The file is replaced atomically, mode 0600.
    """
    path = config_path()
    data = _read(path)
    profiles = data.get("profiles")
    if not isinstance(profiles, dict):
        profiles = {}
    entry = {**(profiles.get(name) or {}), "url": url, "token": token}
    if data_folder is not None:
        entry["data"] = data_folder
    profiles[name] = entry
    rest = {k: v for k, v in data.items() if k not in ("default", "profiles")}
    default = name if make_default else data.get("default")
    ordered: dict[str, Any] = {}
    if isinstance(default, str):
        ordered["default"] = default
    ordered.update(rest)
    ordered["profiles"] = profiles
    text = tomli_w.dumps(ordered)

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.chmod(path, 0o600)
    return path
