"""The seed, run as printed: the curl commands of Nuki's forum post "Web API Example: Create a key
for your Nuki Smart Lock" against a real `keyhouse serve`.

Each command below is the post's exact text (this file carries it: the commands are the
interface under test; copied from the post's text with SHA-256
7b86efac6865fc1327938cd2e00a84417595997a9056c0a8081a25345e12211d), run through
``bash -c`` with only the placeholders and the host https://api.nuki.io replaced. Two commands
are printed in a form no shell can run; they are repaired minimally, and the repair is explained
where it is made.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from typing import Any

from conftest import LiveServer, SmtpServer, wait_until

# --- the seed's commands, verbatim ------------------------------------------------------------

LIST_LOCKS = (
    "curl -X GET --header 'Accept: application/json' --header 'Authorization: Bearer "
    "ACCESS_TOKEN' 'https://api.nuki.io/smartlock'"
)
CREATE_USER = (
    "curl -X PUT --header 'Content-Type: application/json' --header 'Accept: application/json' "
    "--header 'Authorization: Bearer ACCESS_TOKEN' -d '{ \\\n"
    '"email": "EMAIL", \\\n'
    '"name": "USERNAME" \\\n'
    "}' 'https://api.nuki.io/account/user'"
)
# Printed with typographic quotes (‘ ’) and without a closing quote after the URL.
GET_USERS_AS_PRINTED = (
    "curl -X GET --header ‘Accept: application/json’ --header ‘Authorization: Bearer "
    "ACCESS_TOKEN’ ‘https://api.nuki.io/account/user"
)
# The key-creation body contains literal line breaks (and trailing spaces before them).
CREATE_KEY = (
    "curl -X PUT --header 'Content-Type: application/json' --header 'Accept: application/json' "
    "--header 'Authorization: Bearer ACCESS_TOKEN' -d '{ \"accountUserId\": ACCOUNT_USER_ID, \n"
    '"name": "KEY_NAME", "remoteAllowed": false, \n'
    "\"smartActionsEnabled\": false}' 'https://api.nuki.io/smartlock/SMARTLOCK_ID/auth'"
)
GET_KEYS = (
    "curl -X GET --header 'Accept: application/json' --header 'Authorization: Bearer "
    "ACCESS_TOKEN' 'https://api.nuki.io/smartlock/SMARTLOCK_ID/auth'"
)
EDIT_KEY = (
    "curl -X POST --header 'Content-Type: application/json' --header 'Accept: application/json' "
    "--header 'Authorization: Bearer ACCESS_TOKEN' -d '{ \\\n"
    '"name": "NEW_KEY_NAME" \\\n'
    "}' 'https://api.nuki.io/smartlock/SMARTLOCK_ID/auth/KEY_ID'"
)
DEACTIVATE_KEY = (
    "curl -X POST --header 'Content-Type: application/json' --header 'Accept: application/json' "
    "--header 'Authorization: Bearer ACCESS_TOKEN' -d '{ \\\n"
    '"enable": false \\\n'
    "}' 'https://api.nuki.io/smartlock/SMARTLOCK_ID/auth/KEY_ID'"
)
DELETE_KEY = (
    "curl -X DELETE --header 'Accept: application/json' --header 'Authorization: Bearer "
    "ACCESS_TOKEN' 'https://api.nuki.io/smartlock/SMARTLOCK_ID/auth/KEY_ID'"
)
# Printed without a closing quote after the URL.
DELETE_USER_AS_PRINTED = (
    "curl -X DELETE --header 'Accept: application/json' --header 'Authorization: Bearer "
    "ACCESS_TOKEN' 'https://api.nuki.io/account/user/AccountUserID"
)

AS_PRINTED = [
    LIST_LOCKS,
    CREATE_USER,
    GET_USERS_AS_PRINTED,
    CREATE_KEY,
    GET_KEYS,
    EDIT_KEY,
    DEACTIVATE_KEY,
    DELETE_KEY,
    DELETE_USER_AS_PRINTED,
]

# "Get the user ID" is printed with typographic quotes ‘ ’ (the forum software "smartened"
# them). To a shell those are ordinary characters, not quotes: `‘Accept:` and
# `application/json’` become separate words, so curl would get nonsense URLs and no header; no
# shell can run the command as printed. The URL's closing quote is also missing, which would
# leave bash waiting for more input. So we straighten the quotes and close the last one: the
# command every reader has to type instead.
GET_USERS = GET_USERS_AS_PRINTED.replace("‘", "'").replace("’", "'") + "'"
# "Delete a user" lacks the closing quote after its URL (an unterminated quoted string in bash):
# closed here, nothing else changed.
DELETE_USER = DELETE_USER_AS_PRINTED + "'"

# A key with the restrictions the seed describes ("Furthermor you can set restrictions…"), in
# the seed's own style: the key-creation command with the restriction fields added to its body.
CREATE_RESTRICTED_KEY = CREATE_KEY.replace(
    '"smartActionsEnabled": false}',
    '"smartActionsEnabled": false, \n'
    '"allowedFromDate": "2026-12-01T00:00:00Z", "allowedUntilDate": "2027-01-31T23:00:00Z", \n'
    '"allowedWeekDays": 124, "allowedFromTime": 480, "allowedUntilTime": 1080}',
)
RESTRICTIONS = {
    "allowedFromDate": "2026-12-01T00:00:00.000Z",
    "allowedUntilDate": "2027-01-31T23:00:00.000Z",
    "allowedWeekDays": 124,
    "allowedFromTime": 480,
    "allowedUntilTime": 1080,
}

PLACEHOLDERS = (
    "ACCESS_TOKEN",
    "EMAIL",
    "USERNAME",
    "ACCOUNT_USER_ID",
    "NEW_KEY_NAME",
    "KEY_NAME",
    "SMARTLOCK_ID",
    "KEY_ID",
    "AccountUserID",
)
NUKI = "https://api.nuki.io"
GUEST_LINK = re.compile(r"https?://[^/\s\"<>]+/guest/([A-Za-z0-9_-]{43})(?![A-Za-z0-9_-])")


# --- running them -----------------------------------------------------------------------------


@dataclass
class CurlAnswer:
    status: int
    body: str
    headers: dict[str, list[str]]

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> list[str]:
        return self.headers.get(name.lower(), [])


def fill(command: str, server: LiveServer, **values: object) -> str:
    """Replace the placeholders (whole words only) and the host; nothing else."""
    unknown = set(values) - set(PLACEHOLDERS)
    assert not unknown, unknown
    pattern = re.compile(r"\b(" + "|".join(PLACEHOLDERS) + r")\b")

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in values, f"no value for placeholder {name} in {command!r}"
        return str(values[name])

    return pattern.sub(replace, command).replace(NUKI, server.url)


def run_curl(command: str, *, show_headers: bool = False) -> CurlAnswer:
    """Run a curl command line through bash, adding only -sS -w '\\n%{http_code}' (and -D -)."""
    assert command.startswith("curl "), command
    options = "-sS -w '\\n%{http_code}' " + ("-D - " if show_headers else "")
    line = command.replace("curl ", f"curl {options}", 1)
    # bytes, not text: universal newlines would turn the header block's CRLFs into LFs
    done = subprocess.run(["bash", "-c", line], capture_output=True, timeout=60, check=False)
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 0, f"{line}\nexit {done.returncode}: {stderr}"
    output, _, status = done.stdout.decode("utf-8").rpartition("\n")
    headers: dict[str, list[str]] = {}
    body = output
    if show_headers:
        head, _, body = output.partition("\r\n\r\n")
        for raw in head.split("\r\n")[1:]:
            name, _, value = raw.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
    return CurlAnswer(int(status), body, headers)


def mail_parts(message: Message) -> tuple[str, str, str]:
    """To, Subject and the plain-text part of a received (multipart/alternative) mail."""
    subject = str(make_header(decode_header(message["Subject"])))
    assert message.get_content_type() == "multipart/alternative"
    (text,) = [part for part in message.walk() if part.get_content_type() == "text/plain"]
    payload = text.get_payload(decode=True)
    assert isinstance(payload, bytes)
    body = payload.decode(text.get_content_charset() or "utf-8").replace("\r\n", "\n")
    return message["To"], subject, body


# --- tests ------------------------------------------------------------------------------------


def test_the_repairs_change_only_quotes() -> None:
    # as printed, two commands can't run in a shell: typographic quotes, an unclosed quote
    assert "‘" in GET_USERS_AS_PRINTED and "’" in GET_USERS_AS_PRINTED
    for command in (GET_USERS_AS_PRINTED, DELETE_USER_AS_PRINTED):
        assert command.replace("‘", "'").replace("’", "'").count("'") % 2 == 1, command
    assert GET_USERS.replace("'", "") == GET_USERS_AS_PRINTED.replace("‘", "").replace("’", "")
    assert DELETE_USER.rstrip("'") == DELETE_USER_AS_PRINTED


def test_fill_replaces_whole_placeholders_only(live_server: LiveServer) -> None:
    filled = fill(
        EDIT_KEY, live_server, ACCESS_TOKEN="t", NEW_KEY_NAME="n", SMARTLOCK_ID=1, KEY_ID=2
    )
    assert '"name": "n"' in filled
    assert f"'{live_server.url}/smartlock/1/auth/2'" in filled
    assert "Bearer t'" in filled


def test_the_seed_workflow_runs_as_printed(
    live_server: LiveServer, smtp_server: SmtpServer
) -> None:
    server = live_server
    mailbox = smtp_server.mailbox
    email, username = "guest.seed@example.com", "Seed Guest"
    common = {"ACCESS_TOKEN": server.token}

    # Get the Smart Lock ID
    answer = run_curl(fill(LIST_LOCKS, server, **common))
    assert answer.status == 200, answer.body
    locks = answer.json()
    assert sorted(lock["smartlockId"] for lock in locks) == sorted(server.lock_ids)
    lock = locks[0]
    smartlock_id, lock_name = lock["smartlockId"], lock["name"]
    common["SMARTLOCK_ID"] = smartlock_id

    # Create a user: the body has shell line continuations inside single quotes; the answer is
    # 200 and says so in a Warning header.
    answer = run_curl(
        fill(CREATE_USER, server, **common, EMAIL=email, USERNAME=username), show_headers=True
    )
    assert answer.status == 200, answer.body
    created_user = answer.json()
    assert created_user["email"] == email
    assert created_user["name"] == username
    warnings = answer.header("Warning")
    assert warnings, answer.headers
    assert any(w.startswith("299 ") and "shell line continuations" in w for w in warnings)

    # Get the user ID (quotes straightened, see GET_USERS)
    answer = run_curl(fill(GET_USERS, server, **common))
    assert answer.status == 200, answer.body
    (user,) = [u for u in answer.json() if u["email"] == email]
    account_user_id = user["accountUserId"]
    assert account_user_id == created_user["accountUserId"]

    # Create a key: 204, then an invite mail
    key_name = "Seed key"
    answer = run_curl(
        fill(CREATE_KEY, server, **common, ACCOUNT_USER_ID=account_user_id, KEY_NAME=key_name)
    )
    assert answer.status == 204, answer.body
    assert answer.body == ""
    messages = mailbox.wait_for(1, timeout=10)
    assert len(messages) == 1, "no invite mail within 10 s"
    to, subject, body = mail_parts(messages[0])
    assert to == email
    assert lock_name in subject and key_name in subject
    assert f"Lock:         {lock_name}" in body
    assert f"Key:          {key_name}" in body
    assert GUEST_LINK.search(body), body

    # Get the key ID: applied on the (virtual) lock, with the slot it got
    def listed(name: str) -> dict[str, Any] | None:
        answer = run_curl(fill(GET_KEYS, server, **common))
        assert answer.status == 200, answer.body
        found = [k for k in answer.json() if k["name"] == name]
        assert len(found) <= 1, found
        return found[0] if found else None

    key = wait_until(
        lambda: (k := listed(key_name)) and k.get("syncState") == "applied" and k,
        what="the key to be applied",
    )
    assert key["accountUserId"] == account_user_id
    assert isinstance(key["authId"], int) and key["authId"] >= 1
    assert key["type"] == 0 and key["enabled"] is True and key["remoteAllowed"] is False
    assert re.fullmatch(r"[0-9a-f]{24}", key["id"])
    first_key_id = key["id"]

    # A second key, with the time restrictions the seed describes
    restricted_name = "Seed weekdays"
    answer = run_curl(
        fill(
            CREATE_RESTRICTED_KEY,
            server,
            **common,
            ACCOUNT_USER_ID=account_user_id,
            KEY_NAME=restricted_name,
        )
    )
    assert answer.status == 204, answer.body
    messages = mailbox.wait_for(2, timeout=10)
    assert len(messages) == 2, "no second invite mail within 10 s"
    to, subject, body = mail_parts(messages[1])
    assert to == email
    assert restricted_name in subject and lock_name in subject
    assert "Mon–Fri, 08:00–18:00" in body, body
    second_link = GUEST_LINK.search(body)
    assert second_link
    first_link = GUEST_LINK.search(mail_parts(messages[0])[2])
    assert first_link and second_link.group(1) != first_link.group(1)
    key = wait_until(
        lambda: (k := listed(restricted_name)) and k.get("syncState") == "applied" and k,
        what="the restricted key to be applied",
    )
    assert {field: key.get(field) for field in RESTRICTIONS} == RESTRICTIONS
    key_id = key["id"]

    # Edit a key (rename): 204, and the time window stays
    new_name = "Seed weekdays renamed"
    answer = run_curl(fill(EDIT_KEY, server, **common, NEW_KEY_NAME=new_name, KEY_ID=key_id))
    assert answer.status == 204, answer.body
    renamed = wait_until(lambda: listed(new_name), what="the renamed key")
    assert renamed["id"] == key_id
    assert listed(restricted_name) is None
    assert {field: renamed.get(field) for field in RESTRICTIONS} == RESTRICTIONS
    assert renamed["enabled"] is True

    # Deactivate a key: "enable": false (the seed's spelling) disables it
    answer = run_curl(fill(DEACTIVATE_KEY, server, **common, KEY_ID=key_id))
    assert answer.status == 204, answer.body
    disabled = listed(new_name)
    assert disabled is not None and disabled["enabled"] is False
    assert {field: disabled.get(field) for field in RESTRICTIONS} == RESTRICTIONS
    assert disabled["name"] == new_name

    # Delete a key: 204, then gone
    answer = run_curl(fill(DELETE_KEY, server, **common, KEY_ID=key_id))
    assert answer.status == 204, answer.body
    wait_until(lambda: listed(new_name) is None, what="the deleted key to disappear")
    assert listed(key_name) is not None  # the other key is untouched

    # Delete a user (closing quote added, see DELETE_USER): 204, then the user is gone, and
    # with it the user's remaining key
    answer = run_curl(fill(DELETE_USER, server, **common, AccountUserID=account_user_id))
    assert answer.status == 204, answer.body
    answer = run_curl(fill(GET_USERS, server, **common))
    assert answer.status == 200
    assert all(u["accountUserId"] != account_user_id for u in answer.json())
    wait_until(lambda: listed(key_name) is None, what="the user's key to disappear")
    answer = run_curl(fill(GET_KEYS, server, **common))
    assert all(k["id"] != first_key_id for k in answer.json())

    # after the two invites, a notice for each key that stopped working: the restricted key
    # switched off, then deleted; the first key deleted with its user. No more mail than that.
    messages = mailbox.wait_for(5, timeout=10)
    time.sleep(0.5)
    assert len(mailbox.messages) == 5
    notices = [mail_parts(m) for m in messages[2:]]
    assert {to for to, _, _ in notices} == {email}
    assert sorted(subject for _, subject, _ in notices) == sorted(
        [
            f"Your key to {lock_name} is switched off: {new_name}",
            f"Your key to {lock_name} was revoked: {new_name}",
            f"Your key to {lock_name} was revoked: {key_name}",
        ]
    )
    assert not any(GUEST_LINK.search(body) for _, _, body in notices)  # no secrets
