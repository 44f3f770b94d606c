"""The stand-in for api.nuki.io: a second Keyhouse server process in Nuki mode (docs/simulator.md),
for the tests of the link to Nuki's cloud."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import LiveServer, running_server


@contextmanager
def standin_server(data: Path, **env: str) -> Iterator[LiveServer]:
    """`keyhouse serve` in Nuki mode on ``data``, with its demo account's two locks; ``env``
    adds or overrides KEYHOUSE_* settings."""
    settings = {
        "KEYHOUSE_NUKI_MODE": "1",
        "KEYHOUSE_WORKER_INTERVAL_SECONDS": "0.2",
        "KEYHOUSE_CONFIRM_WAIT_SECONDS": "0",
        **env,
    }
    with running_server(data, settings) as server:
        assert server.token and len(server.lock_ids) == 2, server.output
        yield server
