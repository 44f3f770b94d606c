"""Issue 12: every list has a cap (KEYHOUSE_LIST_MAX_ITEMS); a longer list answers its first page
with a Link header (rel="next"), X-Has-More and X-Page-Size, and the links lead through every
item exactly once, in the order of the whole list, whatever is inserted or deleted between pages
(a keyset cursor, not an offset). Over HTTP to the real app, on SQLite and PostgreSQL; the SDK
against a real `keyhouse serve`."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Tenant, running_server, tenant_with
from keyhouse.client import AsyncClient, Client
from keyhouse.client.errors import KeyhouseClientError
from keyhouse.services import admin
from keyhouse.services.present import auth_shape, to_json
from keyhouse.store import repo

CAP = 5


@pytest.fixture
def small(tmp_path: Path, store_url: str | None) -> Iterator[Tenant]:
    """A tenant whose server answers at most CAP items per list, on either store."""
    with tenant_with(tmp_path, database_url=store_url, list_max_items=CAP) as tenant:
        yield tenant


def add_fobs(tenant: Tenant, lock: int, count: int, start: int = 0) -> None:
    if "holder" not in tenant.extra:
        tenant.extra["holder"] = tenant.create_user("holder@example.com", "Holder")
    for n in range(start, start + count):
        body = {
            "name": f"Fob {n}",
            "type": 2,
            "accountUserId": tenant.extra["holder"],
            "remoteAllowed": False,
        }
        answer = tenant.put(f"/smartlock/{lock}/auth", json=body)
        assert answer.status_code == 204, answer.text


def walk(tenant: Tenant, path: str, **params: Any) -> tuple[list[list[dict]], list[httpx.Response]]:
    """Every page from ``path``, following the Link headers as they are."""
    pages, answers = [], []
    answer = tenant.get(path, params=params or None)
    while True:
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
        answers.append(answer)
        link = answer.links.get("next")
        if link is None:
            return pages, answers
        assert len(pages) < 100, "the links never end"
        answer = tenant.get(link["url"])


def order_key(key: dict) -> tuple[int, str, str]:
    return (key["smartlockId"], key["creationDate"], key["id"])


def all_keys(tenant: Tenant) -> list[dict]:
    """Every key of the account as listed, read straight from the store (no paging)."""
    with tenant.runtime.db.read() as session:
        rows = repo.list_auths(session, tenant.account_id)
        return json.loads(to_json([auth_shape(row) for row in rows]))


# --- keys -------------------------------------------------------------------------------------


def test_a_lock_s_keys_come_in_pages_linked_to_the_next(small: Tenant) -> None:
    add_fobs(small, small.plain_lock, 12)
    first = small.get(f"/smartlock/{small.plain_lock}/auth")
    assert first.status_code == 200
    assert len(first.json()) == CAP
    assert first.headers["x-has-more"] == "true"
    assert first.headers["x-page-size"] == str(CAP)
    link = first.headers["link"]
    assert link.startswith(f"</smartlock/{small.plain_lock}/auth?after=") and link.endswith(
        '>; rel="next"'
    )

    pages, answers = walk(small, f"/smartlock/{small.plain_lock}/auth")
    assert [len(page) for page in pages] == [5, 5, 2]
    listed = [key for page in pages for key in page]
    assert [k["name"] for k in listed] == [f"Fob {n}" for n in range(12)]
    assert listed == sorted(listed, key=order_key)
    assert "link" not in answers[-1].headers and "x-has-more" not in answers[-1].headers
    # the cached pages are the same pages
    assert walk(small, f"/smartlock/{small.plain_lock}/auth")[0] == pages


def test_a_list_that_fits_has_no_paging_headers(small: Tenant) -> None:
    add_fobs(small, small.plain_lock, CAP)  # exactly the cap: still one page
    for path in (f"/smartlock/{small.plain_lock}/auth", "/smartlock/auth", "/smartlock"):
        answer = small.get(path)
        assert answer.status_code == 200
        assert len(answer.json()) <= CAP
        assert not {"link", "x-has-more", "x-page-size"} & set(answer.headers), path


def test_all_keys_page_across_locks_keeping_the_filters(small: Tenant) -> None:
    add_fobs(small, small.keypad_lock, 4)
    add_fobs(small, small.plain_lock, 4, start=4)
    code = {"name": "Code", "type": 13, "code": 345678, "remoteAllowed": False}
    assert small.put(f"/smartlock/{small.keypad_lock}/auth", json=code).status_code == 204

    pages, answers = walk(small, "/smartlock/auth", types="2", limit=3)
    assert [len(page) for page in pages] == [3, 3, 2]
    assert all("types=2" in a.headers["link"] for a in answers[:-1])
    assert all("limit=3" in a.headers["link"] for a in answers[:-1])
    listed = [key for page in pages for key in page]
    assert {k["type"] for k in listed} == {2}
    assert listed == [k for k in all_keys(small) if k["type"] == 2]
    # a limit over the cap is the cap
    assert len(small.get("/smartlock/auth", params={"limit": 1000}).json()) == CAP


@pytest.mark.parametrize("path", ["lock", "all"])
def test_pages_neither_skip_nor_repeat_when_keys_come_and_go(small: Tenant, path: str) -> None:
    lock = small.plain_lock
    url = f"/smartlock/{lock}/auth" if path == "lock" else "/smartlock/auth"
    add_fobs(small, lock, 12)
    before = {k["id"] for k in all_keys(small)}
    first = small.get(url)
    page_one = first.json()
    # between the pages: two keys of the first page deleted, three new keys at the end
    for key in page_one[:2]:
        assert small.delete(f"/smartlock/{lock}/auth/{key['id']}").status_code == 204
    add_fobs(small, lock, 3, start=100)
    small.runtime.device_worker.submit([lock])  # let the lock confirm the deletions
    rest, _ = walk(small, first.links["next"]["url"])
    listed = page_one + [key for page in rest for key in page]

    ids = [k["id"] for k in listed]
    assert len(ids) == len(set(ids)), "a key was listed twice"
    assert listed == sorted(listed, key=order_key)
    survivors = before - {k["id"] for k in page_one[:2]}
    assert survivors <= set(ids), "a key that was there throughout was skipped"
    assert {f"Fob {n}" for n in (100, 101, 102)} <= {k["name"] for k in listed}


def _query(answer: httpx.Response) -> dict[str, str]:
    return dict(httpx.URL(answer.links["next"]["url"]).params)


@pytest.mark.parametrize(
    ("after", "why"),
    [
        ("not-a-cursor", "base64"),
        ("", "1 to"),
        ("x" * 201, "1 to"),
        ("a+b/c", "characters"),
        ("cursor", "base64"),
    ],
)
def test_a_bad_cursor_is_refused_naming_after(small: Tenant, after: str, why: str) -> None:
    for path in (f"/smartlock/{small.plain_lock}/auth", "/smartlock/auth", "/smartlock"):
        answer = small.get(path, params={"after": after})
        assert answer.status_code == 400, (path, answer.text)
        error = answer.json()
        assert (error["field"], error["rule"]) == ("after", "cursor"), error
        assert why in error["detailMessage"], error


def cursor(*values: Any) -> str:
    raw = json.dumps(list(values)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("path", "after"),
    [
        ("/smartlock/auth", cursor("lock", 5)),  # another list's cursor
        ("/smartlock/auth", cursor("auth", 1, "yesterday", "abc")),
        ("/smartlock/auth", cursor("auth", 1, "2026-12-01T00:00:00", "abc")),  # no zone
        ("/smartlock/auth", cursor("auth", 1, "2026-12-01T00:00:00+00:00", "a\u0000b")),
        ("/smartlock", cursor("lock", 2**64)),
        ("/smartlock", cursor("lock", True)),
        ("/account/user", cursor("user", "7")),
        ("/account/user", cursor("user", 2**31)),  # wider than the column
        ("/keyhouse/invites", cursor("invite", 1, 2)),
    ],
)
def test_a_cursor_that_is_not_this_list_s_is_refused(small: Tenant, path: str, after: str) -> None:
    answer = small.get(path, params={"after": after})
    assert answer.status_code == 400, answer.text
    assert (answer.json()["field"], answer.json()["rule"]) == ("after", "cursor")


def test_far_cursors_are_answered_not_crashed(small: Tenant) -> None:
    """Well-formed cursors beyond any row (the widest ints, the oldest instant): an empty page."""
    cases = {
        "/smartlock": cursor("lock", 2**63 - 1),
        "/account/user": cursor("user", 2**31 - 1),
        "/keyhouse/invites": cursor("invite", -(2**31)),
        "/smartlock/auth": cursor("auth", 2**63 - 1, "0001-01-01T00:00:00+00:00", "ffff"),
    }
    for path, after in cases.items():
        answer = small.get(path, params={"after": after})
        assert answer.status_code == 200, (path, answer.text)
        assert answer.json() == []


def test_a_limit_below_one_is_refused(small: Tenant) -> None:
    for path in ("/smartlock", "/smartlock/auth", "/keyhouse/invites", "/account/user"):
        answer = small.get(path, params={"limit": 0})
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == "limit"


# --- locks, users, invites, logs --------------------------------------------------------------


def test_locks_are_paged_by_id(small: Tenant) -> None:
    with small.runtime.db.session() as session:
        for n in range(5):
            admin.add_lock(session, small.runtime.link, account_id=small.account_id, name=f"L{n}")
    pages, _ = walk(small, "/smartlock")
    assert [len(page) for page in pages] == [5, 2]
    ids = [lock["smartlockId"] for page in pages for lock in page]
    assert ids == sorted(ids) and len(set(ids)) == 7


def test_users_are_paged_by_id_the_link_replacing_the_offset(small: Tenant) -> None:
    made = [small.create_user(f"u{n}@example.com", f"User {n}") for n in range(12)]
    pages, answers = walk(small, "/account/user")
    assert [u["accountUserId"] for page in pages for u in page] == made
    assert [len(page) for page in pages] == [5, 5, 2]
    # an official offset still works; the next page goes on after the last user shown
    pages, answers = walk(small, "/account/user", offset=3, limit=4)
    assert [u["accountUserId"] for page in pages for u in page] == made[3:]
    assert all("offset" not in a.headers["link"] for a in answers[:-1])
    both = small.get(
        "/account/user", params={"offset": 1, "after": _query(answers[0])["after"]}
    ).json()
    assert (both["field"], both["rule"]) == ("offset", "exclusive")
    # keyset: users deleted before the cursor shift nothing
    first = small.get("/account/user")
    for user_id in made[:3]:
        assert small.delete(f"/account/user/{user_id}").status_code == 204
    rest, _ = walk(small, first.links["next"]["url"])
    assert [u["accountUserId"] for page in rest for u in page] == made[5:]


def test_invites_are_paged_newest_first_with_the_status_filter_in_the_query(small: Tenant) -> None:
    for n in range(7):
        user = small.create_user(f"guest{n}@example.com", f"Guest {n}")
        body = {"name": f"App {n}", "accountUserId": user, "remoteAllowed": True}
        assert small.put(f"/smartlock/{small.plain_lock}/auth", json=body).status_code == 204
    pages, _ = walk(small, "/keyhouse/invites")
    ids = [invite["id"] for page in pages for invite in page]
    assert [len(page) for page in pages] == [5, 2]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 7
    # the status filter is applied before the page is cut: every page is full of its status
    seen = []
    for status in ("queued", "sent", "failed", "unconfirmed"):
        pages, answers = walk(small, "/keyhouse/invites", status=status, limit=2)
        found = [invite for page in pages for invite in page]
        assert {invite["status"] for invite in found} <= {status}
        assert (all(len(page) == 2 for page in pages[:-1]) and pages[-1]) or not found
        assert all(f"status={status}" in a.headers["link"] for a in answers[:-1])
        seen += [invite["id"] for invite in found]
    assert sorted(seen, reverse=True) == ids


def test_the_log_links_to_older_entries_by_the_official_id(small: Tenant) -> None:
    lock = small.plain_lock
    for action in (1, 2, 1):
        answer = small.post(f"/smartlock/{lock}/action", json={"action": action})
        assert answer.status_code == 204, answer.text
    newest = small.get(f"/smartlock/{lock}/log").json()
    assert len(newest) >= 3
    pages, answers = walk(small, f"/smartlock/{lock}/log", limit=2)
    assert [entry["id"] for page in pages for entry in page] == [e["id"] for e in newest]
    assert "limit=2" in answers[0].headers["link"] and "id=" in answers[0].headers["link"]
    assert "after" not in answers[0].headers["link"]


# --- the SDK against a real server --------------------------------------------------------------


@pytest.fixture
def paging_server(tmp_path: Path) -> Iterator[Any]:
    with running_server(tmp_path / "data", {"KEYHOUSE_LIST_MAX_ITEMS": "3"}) as server:
        yield server


def test_the_sdk_returns_every_item_through_the_pages(paging_server: Any) -> None:
    lock = paging_server.lock_ids[0]
    with Client(paging_server.token, paging_server.url) as client:
        holder = client.create_user("holder@example.com", "Holder").account_user_id
        made = [
            client.create_key(
                lock, name=f"Fob {n}", type=2, account_user_id=holder, remote_allowed=False
            ).id
            for n in range(8)
        ]
        for n in range(7):
            client.create_user(f"u{n}@example.com", f"User {n}")
        # the server answers 3 at a time
        raw = httpx.get(f"{paging_server.url}/smartlock/{lock}/auth", headers=paging_server.headers)
        assert len(raw.json()) == 3 and raw.links["next"]

        keys = client.list_keys(lock)
        assert [k.id for k in keys if k.id in made] == made
        assert len(keys) == len({k.id for k in keys}) >= 8
        assert {k.id for k in client.list_keys()} >= set(made)
        assert [k.id for k in client.list_keys(lock, types=[2])] == made
        users = client.list_users()
        assert len(users) >= 7 and len({u.account_user_id for u in users}) == len(users)
        assert len(client.list_users(limit=5)) == 5  # gathered over two pages of 3
        assert [u.account_user_id for u in client.list_users(offset=2)] == [
            u.account_user_id for u in users[2:]
        ]

    async def async_keys() -> list[str]:
        async with AsyncClient(paging_server.token, paging_server.url) as client:
            return [k.id for k in await client.list_keys(lock) if k.id in made]

    assert asyncio.run(async_keys()) == made


def test_the_sdk_does_not_follow_a_next_page_to_another_server() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        link = '<https://elsewhere.example/smartlock?after=x>; rel="next"'
        return httpx.Response(200, json=[], headers={"Link": link})

    transport = httpx.MockTransport(answer)
    with (
        Client("token", "http://keyhouse.test", transport=transport) as client,
        pytest.raises(KeyhouseClientError, match="not followed"),
    ):
        client.list_smartlocks()


def test_the_sdk_refuses_a_next_page_that_loops() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[], headers={"Link": '</smartlock?after=a>; rel="next"'})

    transport = httpx.MockTransport(answer)
    with (
        Client("token", "http://keyhouse.test", transport=transport) as client,
        pytest.raises(KeyhouseClientError, match="loop"),
    ):
        client.list_smartlocks()
