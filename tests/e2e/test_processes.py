"""Keyhouse as several real processes on one PostgreSQL database: `keyhouse admin db upgrade`
owns the schema, `serve --workers 2 --no-worker` answers the API from two processes, and a
separate `keyhouse worker` brings the keys to their locks and sends the mail.

Every process is a real `python -m keyhouse` subprocess; no KEYHOUSE_* variable of the test run
reaches them unless a test sets it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import (
    SmtpServer,
    clear_keyhouse_environment,
    fresh_postgres_database,
    keyhouse_command,
    start_server,
    wait_until,
)
from keyhouse.store.database import Database, head_revision

# Every test here names its store: an empty PostgreSQL database of its own (``database``) or
# the data folder's SQLite file. So the module runs once, in the SQLite pass.
pytestmark = pytest.mark.own_stores

UPGRADE = "keyhouse admin db upgrade"


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_keyhouse_environment(monkeypatch)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("KEYHOUSE_CONFIG", str(tmp_path / "config.toml"))


@pytest.fixture
def database() -> Iterator[str]:
    """A new, empty PostgreSQL database (the tests that take it run in the SQLite pass only:
    they name their store themselves)."""
    with fresh_postgres_database("kh_proc") as url:
        yield url


def keyhouse(
    data: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*keyhouse_command(), "--data", str(data), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def assert_refused_in_one_sentence(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def revision_of(url: str) -> str | None:
    db = Database(url)
    try:
        return db.revision()
    finally:
        db.dispose()


# --- the schema belongs to `admin db upgrade` -------------------------------------------------


def test_admin_db_upgrade_creates_the_schema_and_prints_the_head_revision(
    tmp_path: Path, database: str
) -> None:
    env = {"KEYHOUSE_DATABASE_URL": database}
    done = keyhouse(tmp_path / "data", "admin", "db", "upgrade", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == head_revision()
    assert "from nothing to" in done.stdout
    assert revision_of(database) == head_revision()

    again = keyhouse(tmp_path / "data", "admin", "db", "upgrade", env=env)
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stdout
    assert again.stdout.splitlines()[-1] == head_revision()


def test_admin_db_upgrade_brings_an_old_schema_up(tmp_path: Path, database: str) -> None:
    db = Database(database)
    db.migrate("0006")
    db.dispose()
    done = keyhouse(
        tmp_path / "data", "admin", "db", "upgrade", env={"KEYHOUSE_DATABASE_URL": database}
    )
    assert done.returncode == 0, done.stderr
    assert f"from 0006 to {head_revision()}" in done.stdout
    assert done.stdout.splitlines()[-1] == head_revision()


@pytest.mark.sqlite_only("the data folder's SQLite file is what it makes")
def test_admin_db_upgrade_on_sqlite_makes_the_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = keyhouse(data, "admin", "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == head_revision()
    assert revision_of(f"sqlite:///{data / 'keyhouse.db'}") == head_revision()


@pytest.mark.parametrize("command", [["serve"], ["worker"], ["admin", "account", "list"]])
def test_an_old_schema_is_refused_in_one_sentence_and_left_alone(
    tmp_path: Path, database: str, command: list[str]
) -> None:
    db = Database(database)
    db.migrate("0006")
    db.dispose()
    done = keyhouse(tmp_path / "data", *command, env={"KEYHOUSE_DATABASE_URL": database})
    assert_refused_in_one_sentence(done, "0006", head_revision(), UPGRADE)
    assert revision_of(database) == "0006"  # nobody but `admin db upgrade` migrates


@pytest.mark.parametrize("command", [["serve"], ["worker"], ["admin", "account", "create"]])
def test_an_empty_database_is_refused_and_stays_empty(
    tmp_path: Path, database: str, command: list[str]
) -> None:
    if command[-1] == "create":
        command = [*command, "--email", "owner@example.com"]
    done = keyhouse(tmp_path / "data", *command, env={"KEYHOUSE_DATABASE_URL": database})
    assert_refused_in_one_sentence(done, UPGRADE)
    assert revision_of(database) is None


@pytest.mark.sqlite_only("SQLite refuses --workers 2; PostgreSQL runs it (below)")
def test_sqlite_refuses_several_api_processes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = keyhouse(data, "serve", "--workers", "2")
    assert_refused_in_one_sentence(done, "--workers 2 needs PostgreSQL", "KEYHOUSE_DATABASE_URL")
    assert not (data / "keyhouse.db").exists()


# --- two API processes and a worker on one database -------------------------------------------


def children(pid: int) -> list[int]:
    """The process manager's API processes (multiprocessing's spawned children)."""
    found = []
    for line in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        cmdline = Path(f"/proc/{line}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"spawn_main" in cmdline:
            found.append(int(line))
    return found


def two_api_processes(parent: subprocess.Popen, server: Any) -> list[int]:
    """The pids of `serve --workers 2`'s two API processes, once both have started."""
    pids = wait_until(
        lambda: (found := children(parent.pid)) and len(found) == 2 and found,
        timeout=30,
        what="two API processes",
    )
    wait_until(
        lambda: sum("Application startup complete" in line for line in server.output) == 2,
        timeout=30,
        what="both API processes to start",
    )
    return pids


def connections_held(pid: int, port: int) -> int:
    """How many established TCP connections to ``port`` the process holds open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


def clients_on_both(server: Any, pids: list[int], path: str, at_least: int) -> list[httpx.Client]:
    """At least ``at_least`` clients, each keeping a connection open, and more (up to 64) until
    both API processes hold some: which process accepts a connection is the kernel's choice,
    and one pinned process may win many in a row."""
    port = int(server.url.rsplit(":", 1)[1])
    clients: list[httpx.Client] = []
    try:
        while len(clients) < 64:
            client = httpx.Client(base_url=server.url, headers=server.headers, timeout=30)
            clients.append(client)
            assert client.get(path).status_code == 200
            if len(clients) >= at_least and all(connections_held(pid, port) for pid in pids):
                return clients
        held = {pid: connections_held(pid, port) for pid in pids}
        raise AssertionError(f"64 connections, not on both processes: {held}")
    except BaseException:
        for client in clients:
            client.close()
        raise


def start_worker(data: Path, env: dict[str, str]) -> tuple[subprocess.Popen, list[str]]:
    process = subprocess.Popen(
        [*keyhouse_command(), "--data", str(data), "worker"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
    )
    lines: list[str] = []

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=drain, daemon=True).start()
    wait_until(
        lambda: any("Keyhouse worker (pid" in line for line in lines) or process.poll() is not None,
        timeout=30,
        what="the worker to start",
    )
    assert process.poll() is None, "\n".join(lines)
    return process, lines


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def test_two_api_processes_and_a_separate_worker_share_one_postgresql_database(
    tmp_path: Path, database: str, smtp_server: SmtpServer
) -> None:
    upgrade = keyhouse(
        tmp_path / "x", "admin", "db", "upgrade", env={"KEYHOUSE_DATABASE_URL": database}
    )
    assert upgrade.returncode == 0, upgrade.stderr
    data = tmp_path / "data"
    env = {"KEYHOUSE_DATABASE_URL": database, "KEYHOUSE_CONFIG": str(tmp_path / "cfg.toml")}
    server_process, server = start_server(data, env, ["--workers", "2", "--no-worker"])
    worker = None
    try:
        text = "\n".join(server.output)
        assert "Rate limits count per process" in text
        assert server.token and len(server.lock_ids) == 2  # the demo, seeded once by the parent
        pids = two_api_processes(server_process, server)
        if len(os.sched_getaffinity(0)) >= 2:
            # Each API process took a core of its own (KEYHOUSE_CPU_PINNING's default, auto).
            cores = [os.sched_getaffinity(pid) for pid in pids]
            assert [len(cpus) for cpus in cores] == [1, 1] and cores[0] != cores[1], cores
        port = int(server.url.rsplit(":", 1)[1])
        lock = server.lock_ids[0]
        # Each client keeps its connection open: both processes must hold some of them,
        # having answered the requests that came on them.
        clients = clients_on_both(server, pids, "/smartlock", 24)
        try:
            for client in clients:
                answer = client.get("/smartlock")
                assert answer.status_code == 200, answer.text
                assert sorted(lk["smartlockId"] for lk in answer.json()) == sorted(server.lock_ids)
            held = {pid: connections_held(pid, port) for pid in pids}
            assert all(count >= 1 for count in held.values()), held
            assert sum(held.values()) == len(clients), held

            api = clients[0]
            user = api.put("/account/user", json={"email": "anna@example.com", "name": "Anna"})
            assert user.status_code == 200, user.text
            user_id = user.json()["accountUserId"]

            def create(name: str, via: httpx.Client) -> str:
                answer = via.put(
                    f"/smartlock/{lock}/auth",
                    json={"name": name, "accountUserId": user_id, "remoteAllowed": True},
                )
                assert answer.status_code == 204, answer.text
                (key,) = [k for k in via.get(f"/smartlock/{lock}/auth").json() if k["name"] == name]
                return key["id"]

            def states(via: httpx.Client) -> dict[str, str]:
                return {k["name"]: k["syncState"] for k in via.get("/smartlock/auth").json()}

            # No process applies keys or sends mail yet: the API processes have no workers.
            create("Before", api)
            time.sleep(1.5)
            assert states(api) == {"Before": "pending"}
            assert smtp_server.mailbox.messages == []

            # The worker scans once at start, then only once a minute: what it does later it
            # was woken for by the API processes' commits (PostgreSQL NOTIFY).
            worker_env = {
                **env,
                "KEYHOUSE_SMTP_URL": smtp_server.url,
                "KEYHOUSE_WORKER_INTERVAL_SECONDS": "60",
            }
            worker, worker_lines = start_worker(data, worker_env)
            wait_until(lambda: states(api) == {"Before": "applied"}, 15, "the first key applied")
            for n, client in enumerate(clients[:6]):
                create(f"After {n}", client)
            wait_until(
                lambda: set(states(clients[-1]).values()) == {"applied"} and len(states(api)) == 7,
                timeout=15,
                what="every key applied by the worker",
            )
            messages = smtp_server.mailbox.wait_for(7, timeout=15)
            assert len(messages) == 7, [m["Subject"] for m in messages]
            assert {m["To"] for m in messages} == {"anna@example.com"}
            time.sleep(0.5)
            assert len(smtp_server.mailbox.messages) == 7  # each mail handed over once
        finally:
            for client in clients:
                client.close()
        assert stop(worker) == 0, "\n".join(worker_lines)
        assert worker_lines[-1] == "Keyhouse worker stopped."
        worker = None
    finally:
        if worker is not None:
            worker.kill()
        server_process.terminate()
        try:
            server_process.wait(20)
        except subprocess.TimeoutExpired:
            server_process.kill()
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids), "API processes left behind"


def test_with_redis_two_api_processes_share_one_rate_limit(tmp_path: Path, database: str) -> None:
    import redis

    redis_url = os.environ.get("KEYHOUSE_TEST_REDIS", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(redis_url, socket_timeout=2).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"no Redis at {redis_url}: {exc} (CI is set)", pytrace=False)
        pytest.skip(f"no Redis at {redis_url}: {exc}")
    upgrade = keyhouse(
        tmp_path / "x", "admin", "db", "upgrade", env={"KEYHOUSE_DATABASE_URL": database}
    )
    assert upgrade.returncode == 0, upgrade.stderr
    env = {
        "KEYHOUSE_DATABASE_URL": database,
        "KEYHOUSE_CONFIG": str(tmp_path / "cfg.toml"),
        "KEYHOUSE_REDIS_URL": redis_url,
        # Counts are kept per store (a digest of the database URL): a fresh database is a
        # fresh count, though its token has the same id as an earlier run's.
        "KEYHOUSE_RATE_LIMIT": "20/minute",
    }
    server_process, server = start_server(tmp_path / "data", env, ["--workers", "2"])
    try:
        assert "Rate limits count per process" not in "\n".join(server.output)
        wait_until(lambda: len(children(server_process.pid)) == 2, timeout=30, what="two processes")
        wait_until(
            lambda: sum("Application startup complete" in line for line in server.output) == 2,
            timeout=30,
            what="both API processes to start",
        )
        statuses = []
        for _ in range(8):  # new connections: spread over both processes
            with httpx.Client(base_url=server.url, headers=server.headers) as client:
                statuses += [client.get("/smartlock").status_code for _ in range(4)]
        # One count for both processes: 20 allowed in all (each alone would allow 20).
        assert statuses.count(200) == 20, statuses
        assert statuses.count(429) == 12
    finally:
        stop(server_process)


def test_a_listing_is_never_older_than_the_last_write_whichever_process_wrote_it(
    tmp_path: Path, database: str
) -> None:
    """Each API process caches key listings; the cache keys on the lock's version in the shared
    database, so a write committed by one process is seen at once by every other's next list."""
    upgrade = keyhouse(
        tmp_path / "x", "admin", "db", "upgrade", env={"KEYHOUSE_DATABASE_URL": database}
    )
    assert upgrade.returncode == 0, upgrade.stderr
    env = {"KEYHOUSE_DATABASE_URL": database, "KEYHOUSE_CONFIG": str(tmp_path / "cfg.toml")}
    server_process, server = start_server(tmp_path / "data", env, ["--workers", "2"])
    try:
        pids = two_api_processes(server_process, server)
        lock = server.lock_ids[0]
        path = f"/smartlock/{lock}/auth"
        clients = clients_on_both(server, pids, path, 12)  # both processes serve
        try:
            body = {"name": "Round 0", "type": 13, "code": 345678, "remoteAllowed": False}
            assert clients[0].put(path, json=body).status_code == 204
            (key,) = clients[0].get(path).json()
            stale = []
            for round_ in range(1, 31):
                writer = clients[round_ % len(clients)]
                name = f"Round {round_}"
                answer = writer.post(f"{path}/{key['id']}", json={"name": name})
                assert answer.status_code == 204, answer.text
                for n, reader in enumerate(clients):  # every cache was warmed last round
                    (seen,) = reader.get(path).json()
                    if seen["name"] != name:
                        stale.append((round_, n, seen["name"]))
            assert stale == []
        finally:
            for client in clients:
                client.close()
    finally:
        server_process.terminate()
        try:
            server_process.wait(20)
        except subprocess.TimeoutExpired:
            server_process.kill()


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs a machine with two CPUs or more",
)
@pytest.mark.parametrize("pinning", ["auto", "off"])
def test_a_single_api_process_runs_on_one_cpu_unless_told_not_to(
    tmp_path: Path, pinning: str
) -> None:
    env = {"KEYHOUSE_CPU_PINNING": pinning, "KEYHOUSE_CONFIG": str(tmp_path / "cfg.toml")}
    process, server = start_server(tmp_path / "data", env)
    try:
        assert httpx.get(f"{server.url}/smartlock", headers=server.headers).status_code == 200
        allowed = os.sched_getaffinity(process.pid)
        threads = [
            os.sched_getaffinity(int(tid)) for tid in os.listdir(f"/proc/{process.pid}/task")
        ]
        if pinning == "auto":
            assert len(allowed) == 1, allowed
            assert all(cpus == allowed for cpus in threads), threads  # every thread with it
            assert any(line.startswith("Runs on CPU ") for line in server.output)
        else:
            assert allowed == os.sched_getaffinity(0)
            assert not any(line.startswith("Runs on CPU ") for line in server.output)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
