"""Issue 11: Schemathesis against a real server, on SQLite and on PostgreSQL (when it answers).

* Our own ``/openapi.json``, every operation, with a real token and real seeded data (a lock
  with a keypad and one without, users, keys, log entries); path parameters are real ids half
  of the time, so operations are exercised past 401/404. Checks: no server error, every answer
  in its declared schema, every status declared, the declared content type, 405 with Allow.
* The official spec (``tests/reference``), the operations we implement: no server error, and
  every 2xx answer in the official schema.

Bounded: ``KEYHOUSE_FUZZ_EXAMPLES`` examples per operation (default 15: a few minutes for both
stores and both documents on two cores). The share of 2xx per operation is printed at the end
of the run (see ``pytest_terminal_summary`` in tests/conftest.py) and written to
``KEYHOUSE_FUZZ_REPORT`` when set. The run is derandomized (the same cases every time, so CI is
repeatable) unless ``KEYHOUSE_FUZZ_RANDOM`` is set (a fresh random run, as for the long run in
docs/reliability.md).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fuzz_support import FuzzServer, our_document, record, record_failure, serve
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import fresh_postgres_database
from official_schemas import patched_spec

EXAMPLES = int(os.environ.get("KEYHOUSE_FUZZ_EXAMPLES", "15"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("KEYHOUSE_FUZZ_RANDOM") is None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
    database=None,
)

OURS = schemathesis.openapi.from_dict(our_document())
IMPLEMENTED = {
    (method.upper(), path)
    for path, item in our_document()["paths"].items()
    for method in item
    if method in {"get", "put", "post", "delete"}
}


def _implemented(ctx: Any) -> bool:
    operation = ctx.operation
    return (operation.method.upper(), operation.path) in IMPLEMENTED


OFFICIAL = schemathesis.openapi.from_dict(patched_spec()).include(_implemented)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fuzz_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzServer]:
    """One seeded server per store for the whole module (PostgreSQL: a fresh database)."""
    data = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    if request.param == "sqlite":
        with serve(data, None, "sqlite") as server:
            yield server
        return
    with fresh_postgres_database(upgraded=True) as url, serve(data, url, "postgres") as server:
        yield server


# Hypothesis resets the global random for every example: an own generator keeps its course.
_CHOICE = random.Random(11)


def _prime(case: Any, server: FuzzServer) -> None:
    """Real ids half of the time (in the path, and where a body names locks, users or keys):
    the operation then runs past its 404. A virtual lock's latency is kept short. A fresh
    Idempotency-Key most of the time."""
    body = case.body
    headers = case.headers or {}
    if "Idempotency-Key" in headers and _CHOICE.random() < 0.8:
        # Generated keys repeat ("0", "00"…) across operations: mostly 422 for another
        # request. A fresh key usually, so the operations run; the generated one sometimes.
        headers["Idempotency-Key"] = f"fuzz-{_CHOICE.getrandbits(64):016x}"
    if isinstance(body, dict) and isinstance(body.get("latencyMs"), int):
        body["latencyMs"] = min(max(body["latencyMs"], 0), 20)
    if _CHOICE.random() < 0.5:
        return
    real = server.real_ids()
    parameters = case.path_parameters or {}
    if "smartlockId" in parameters and "id" in parameters:
        parameters["smartlockId"], parameters["id"] = _CHOICE.choice(real["pairs"])
    else:
        for name in parameters:
            if real.get(name):
                parameters[name] = _CHOICE.choice(real[name])
    door_event = case.operation.path.startswith("/emulator/smartlock/{smartlockId}/")
    if door_event:
        # A door event on a real lock that is online, with a real slot or code.
        if isinstance(body, dict) and "authId" in body and real["slots"]:
            parameters["smartlockId"], body["authId"] = _CHOICE.choice(real["slots"])
        elif isinstance(body, dict) and "code" in body and real["codes"]:
            parameters["smartlockId"], body["code"] = _CHOICE.choice(real["codes"])
        if isinstance(parameters.get("smartlockId"), int):
            server.bring_online(parameters["smartlockId"])
    if isinstance(body, dict):
        if "smartlockIds" in body:
            body["smartlockIds"] = [_CHOICE.choice(real["smartlockId"])]
        if "accountUserId" in body:
            body["accountUserId"] = _CHOICE.choice(real["accountUserId"])
    elif isinstance(body, list) and body:
        keys = real["id"]
        for index, item in enumerate(body):
            if isinstance(item, str):
                body[index] = keys[index % len(keys)]
            elif isinstance(item, dict) and "id" in item:
                item["id"] = keys[index % len(keys)]


def _validate(case: Any, response: Any, checks: list[Any], document: str, store: str) -> None:
    try:
        case.validate_response(response, checks=checks)
    except Exception:
        record_failure(document, store, case.operation.label)
        raise


@OURS.parametrize()
@FUZZ_SETTINGS
def test_our_openapi(case: Any, fuzz_server: FuzzServer) -> None:
    _prime(case, fuzz_server)
    response = case.call(base_url=fuzz_server.url, headers=fuzz_server.headers, timeout=30)
    record("ours", fuzz_server.store, case.operation.label, response.status_code)
    checks = [
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
        content_type_conformance,
    ]
    _validate(case, response, checks, "ours", fuzz_server.store)


@OFFICIAL.parametrize()
@FUZZ_SETTINGS
def test_the_official_spec(case: Any, fuzz_server: FuzzServer) -> None:
    _prime(case, fuzz_server)
    response = case.call(base_url=fuzz_server.url, headers=fuzz_server.headers, timeout=30)
    record("official", fuzz_server.store, case.operation.label, response.status_code)
    checks = [not_a_server_error]
    if 200 <= response.status_code < 300:
        checks.append(response_schema_conformance)
    _validate(case, response, checks, "official", fuzz_server.store)


def test_both_documents_have_operations() -> None:
    assert len(IMPLEMENTED) >= 25
    labels = {op.ok().label for op in OFFICIAL.get_all_operations()}
    assert "GET /smartlock/auth" in labels and "PUT /smartlock/{smartlockId}/auth" in labels
    assert pytest is not None
