"""KEYHOUSE_SMTP_URL: where invite mail goes, and how to reach it safely (a pure parser).

    smtp://[user:password@]host[:port][?starttls=auto|required|no][&cafile=PATH][&verify=no]
    smtps://[user:password@]host[:port][?cafile=PATH][&verify=no]

``smtp://`` (port 25 by default) upgrades to TLS with STARTTLS when the server offers it
(``auto``), insists on it (``required``) or never does (``no``). ``smtps://`` (port 465) speaks
TLS from the start. Certificates are verified against the system's CAs, or ``cafile``;
``verify=no`` turns that off for a development server. User and password are URL-encoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

STARTTLS_MODES = ("auto", "required", "no")


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool
    starttls: str
    username: str | None = None
    password: str | None = None
    verify: bool = True
    cafile: str | None = None


def parse_smtp_url(url: str) -> SmtpTarget:
    """Parse KEYHOUSE_SMTP_URL; a bad value raises ValueError saying what to write."""
    parts = urlsplit(url)
    example = "smtp://user:password@mail.example.com:587?starttls=required"
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(f"KEYHOUSE_SMTP_URL {url!r} must look like {example} or smtps://host")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"starttls", "cafile", "verify"}
    if unknown:
        raise ValueError(
            f"KEYHOUSE_SMTP_URL has unknown option(s) {', '.join(sorted(unknown))}: "
            "use starttls, cafile, verify"
        )
    starttls = query.get("starttls", "auto" if parts.scheme == "smtp" else "no")
    if starttls not in STARTTLS_MODES:
        raise ValueError(f"KEYHOUSE_SMTP_URL starttls={starttls!r}: use auto, required or no")
    if parts.scheme == "smtps" and starttls != "no":
        raise ValueError("KEYHOUSE_SMTP_URL: smtps:// is TLS already, leave starttls out")
    verify = query.get("verify", "yes")
    if verify not in ("yes", "no"):
        raise ValueError(f"KEYHOUSE_SMTP_URL verify={verify!r}: use yes or no")
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 25)
    except ValueError as exc:
        raise ValueError(f"KEYHOUSE_SMTP_URL {url!r} has a bad port: {exc}") from None
    return SmtpTarget(
        host=parts.hostname,
        port=port,
        implicit_tls=parts.scheme == "smtps",
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        verify=verify == "yes",
        cafile=query.get("cafile"),
    )
