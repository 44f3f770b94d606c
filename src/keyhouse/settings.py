"""All configuration in one place: KEYHOUSE_* environment variables and CLI flags."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from keyhouse.outbox.smtp_url import parse_smtp_url
from keyhouse.rules.paging import LIST_MAX_ITEMS_DEFAULT, LIST_MAX_ITEMS_HARD
from keyhouse.rules.rate_limit import parse_rule


def default_data_dir() -> Path:
    """The user's data directory for Keyhouse (``~/.local/share/keyhouse`` on Linux)."""
    return Path(user_data_dir("keyhouse", appauthor=False))


class Settings(BaseSettings):
    """Keyhouse settings; every field can be set as ``KEYHOUSE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="KEYHOUSE_", extra="ignore")

    data: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    smtp_url: str | None = None
    mail_from: str = "Keyhouse <keyhouse@localhost>"
    public_url: str | None = None
    # How long a write waits for the lock to confirm before answering 204 anyway.
    confirm_wait_seconds: float = 2.0
    # Virtual locks: a delay on every device call, and the share of calls that go unanswered
    # (0.0 to 1.0). Zero by default, so the seed workflow is instant; raise them to rehearse
    # slow and flaky locks (KEYHOUSE_SIM_LATENCY_MS=800 KEYHOUSE_SIM_FLAKINESS=0.3).
    sim_latency_ms: int = 0
    sim_flakiness: float = 0.0
    # How often the background worker looks for keys not yet on their lock, and for mail.
    worker_interval_seconds: float = 5.0
    # Every call to a lock gives up after this long (the lock then counts as unreachable).
    device_timeout_seconds: float = Field(default=10.0, gt=0)
    # How often each lock is read in full and compared with the server's keys (drift repair);
    # 0 turns the periodic check off (POST /smartlock/{id}/sync still checks at once).
    drift_check_seconds: float = Field(default=300.0, ge=0)
    # A reconciler's lease on a lock (renewed before every device call, so longer than one).
    lease_seconds: float = Field(default=30.0, gt=0)
    # How many actions (lock, unlock, a guest's Open…) may wait for one lock at once in this
    # process; more answer 423 with Retry-After instead of holding a request thread.
    actions_per_lock: int = Field(default=4, ge=1, le=64)
    # How many locks this process brings up to date at once (a slow lock holds one of them).
    device_threads: int = Field(default=8, ge=1, le=256)
    # SQLite: how the reconciler's own bookkeeping commits (leases, recorded outcomes, the
    # virtual locks' tables). "normal": no fsync per commit; a power cut may lose the last of
    # them, which only sends those keys again (see store/database.py). "full": every commit
    # synced. What a client is told is stored always commits with synchronous=FULL.
    sqlite_reconciler_sync: Literal["normal", "full"] = "normal"
    # PostgreSQL: the connections each process keeps open (as many again may open for a
    # moment). Fewer than the requests in flight made every request past them open and close
    # a connection, a new server process each time (docs/benchmarks.md).
    database_pool_size: int = Field(default=20, ge=1, le=500)
    # Mail: the first retry's delay (doubling up to 5 min), and how long a sender may hold a
    # message before it counts as dead (longer than any SMTP exchange: 10 s per step).
    mail_retry_seconds: float = 2.0
    mail_claim_timeout_seconds: float = 120.0
    # Mail: after this many attempts that failed unexpectedly (an error that is neither the
    # server's answer nor an unreachable server, or a sender that died mid-attempt) a message
    # not yet handed over is marked failed with its last error, instead of retried for ever.
    mail_max_attempts: int = Field(default=5, ge=1)
    # The largest request body taken (413 above it), checked while the body streams in.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Rate limits ("N/second|minute|hour|day", "N per M minutes", or "off"); see
    # docs/reliability.md. Per API token, every request:
    rate_limit: str = "3000/minute"
    # Per client address, failed authentications (no, unknown, revoked or expired token);
    # once spent, that address gets 429 before its token is even looked at.
    auth_failure_limit: str = "60/minute"
    # Per key, resends of its invite mail.
    resend_limit: str = "5/hour"
    # The guest page, per client address: every request, and unknown links.
    guest_rate_limit: str = "30/minute"
    guest_unknown_limit: str = "5/minute"
    # Where rate limits are counted: in process memory (default), or Redis, shared by every
    # process (e.g. redis://127.0.0.1:6379/0).
    redis_url: str | None = None
    # The proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated IPs
    # or networks, "*" for any); default none: the client address is the connection's.
    trusted_proxies: str = ""
    # How long audit-log events are kept (GET /keyhouse/audit); older ones are pruned by the
    # housekeeping worker, about once an hour, in small batches.
    audit_retention_days: int = Field(default=365, ge=1)
    # The most items one answer of a list holds (locks, keys, account users, invites); a
    # longer list answers the first page with a Link header (rel="next") to the rest. The
    # activity log keeps its official limit (default 20, at most 50).
    list_max_items: int = Field(default=LIST_MAX_ITEMS_DEFAULT, ge=1, le=LIST_MAX_ITEMS_HARD)
    # Megabytes of serialised key listings each API process keeps (a lock's 100 keys are
    # about 64 KB, so 64 MB holds the listings of about 1,000 such locks); 0 keeps none.
    listing_cache_mb: int = Field(default=64, ge=0, le=65536)
    # "auto": a single API process (and each 'keyhouse worker') runs on one CPU, so its
    # threads don't hand the GIL from core to core on every request (see keyhouse/cpu.py);
    # "off": free on every CPU. Several API processes (serve --workers N) are left free.
    cpu_pinning: Literal["auto", "off"] = "auto"
    # The key that encrypts stored secrets (upstream API tokens): a Fernet key. Unset: the
    # file secret.key in the data folder, created 0600 on first use.
    secret_key: SecretStr | None = None
    # Nuki's cloud: the default upstream of 'keyhouse admin upstream link' (the operator's
    # choice alone: never set through the HTTP API), and how long one call to it may take.
    upstream_url: str = "https://api.nuki.io"
    upstream_timeout_seconds: float = Field(default=10.0, gt=0)
    # The budget of requests to one linked Nuki account (the cloud link's calls; over it, keys
    # wait): "60/minute", "1000/hour", "off". Nuki documents no limit: this stays well below
    # what its API is known to throttle.
    upstream_rate: str = "60/minute"
    # A create sent to Nuki's cloud whose key it does not list is sent again only after this
    # long (keys may appear late; a second create would make the key twice).
    upstream_resend_seconds: float = Field(default=600.0, gt=0)
    # How often a linked account's lock state and activity log are pulled from its upstream
    # (and once right after an action on one of its locks); 0 turns the periodic pull off.
    upstream_sync_seconds: float = Field(default=60.0, ge=0)
    # The stand-in for api.nuki.io (tests, rehearsals): answers as Nuki's API does where it
    # matters (no Keyhouse fields, late keys, 423, HTML 429, partial updates that wipe the
    # time window); see docs/simulator.md. Off by default: Keyhouse's own behaviour.
    nuki_mode: bool = False
    # In Nuki mode: how long a new key stays out of the listings.
    nuki_keys_appear_seconds: float = Field(default=2.0, ge=0)

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_is_usable(cls, value: str | None) -> str | None:
        if value:
            parse_smtp_url(value)  # a ValueError that says what to write
        return value or None

    @field_validator(
        "rate_limit",
        "auth_failure_limit",
        "resend_limit",
        "guest_rate_limit",
        "guest_unknown_limit",
        "upstream_rate",
    )
    @classmethod
    def _a_rate_limit(cls, value: str) -> str:
        parse_rule(value)  # a ValueError that says what to write
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                f"KEYHOUSE_REDIS_URL {value!r} is not a Redis URL: write e.g. "
                "redis://127.0.0.1:6379/0"
            )
        return value or None

    @field_validator("upstream_url")
    @classmethod
    def _upstream_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(
                f"KEYHOUSE_UPSTREAM_URL {value!r} is not an http(s) URL: write e.g. "
                "https://api.nuki.io"
            )
        return value.rstrip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        for part in (p.strip() for p in value.split(",")):
            if not part or part == "*":
                continue
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(
                    f"KEYHOUSE_TRUSTED_PROXIES: {part!r} is not an IP address or network: "
                    "write e.g. 127.0.0.1,10.0.0.0/8 (or * for any, only behind a proxy)"
                ) from None
        return value

    @model_validator(mode="after")
    def _lease_outlives_a_device_call(self) -> Settings:
        if self.device_timeout_seconds >= self.lease_seconds:
            raise ValueError(
                f"KEYHOUSE_DEVICE_TIMEOUT_SECONDS ({self.device_timeout_seconds:g}) must be "
                f"shorter than KEYHOUSE_LEASE_SECONDS ({self.lease_seconds:g}): a lease must "
                "outlive any one call to a lock"
            )
        return self

    @property
    def proxy_options(self) -> dict[str, object]:
        """uvicorn's own proxy settings: X-Forwarded-* believed only from trusted proxies."""
        trusted = [part.strip() for part in self.trusted_proxies.split(",") if part.strip()]
        if not trusted:
            return {"proxy_headers": False, "forwarded_allow_ips": ""}
        return {"proxy_headers": True, "forwarded_allow_ips": ",".join(trusted)}

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data / 'keyhouse.db'}"

    @property
    def guest_base_url(self) -> str:
        """Where guests' browsers reach this server: the start of every guest link."""
        return (self.public_url or "http://127.0.0.1:8080").rstrip("/")

    @property
    def mail_dir(self) -> Path:
        return self.data / "mail"
