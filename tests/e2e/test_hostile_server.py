"""Issue 11 against a real `keyhouse serve` process, on SQLite and on PostgreSQL: a 200 MB body
is refused (413) without the server's memory growing, whether it declares its length or streams
it chunked; and a refused request leaves the keep-alive connection usable."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import start_server

MB = 1024 * 1024


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def server(tmp_path: Path, store_url: str | None) -> Any:
    env = {"KEYHOUSE_DATABASE_URL": store_url} if store_url else {}
    process, live = start_server(tmp_path / "live", env)
    try:
        yield process, live
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def _send_then_read(url: str, token: str, head: bytes, body_chunks: Any) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.replace(b"TOKEN", token.encode()))
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: it stopped reading, as it should
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return answer


def test_a_200_mb_body_is_refused_without_growing_the_server(server: Any) -> None:
    process, live = server
    before = rss_mb(process.pid)
    piece = b"x" * MB
    declared = (
        b"PUT /account/user HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer TOKEN\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + str(200 * MB).encode() + b"\r\n\r\n"
    )
    answer = _send_then_read(live.url, live.token, declared, (piece for _ in range(200)))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    chunked = (
        b"PUT /account/user HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer TOKEN\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    answer = _send_then_read(live.url, live.token, chunked, (frame for _ in range(200)))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    after = rss_mb(process.pid)
    assert after - before < 50, (before, after)
    print(f"server RSS before {before:.0f} MB, after two 200 MB bodies {after:.0f} MB")


def test_a_refused_request_keeps_the_connection(server: Any) -> None:
    _process, live = server
    with httpx.Client(base_url=live.url, headers=live.headers, timeout=10) as client:
        paths = ("/smartlock/auth?types=%C2%B3", f"/account/user/{2**31}", "/smartlock/log?id=%00")
        for path in paths:
            answer = client.get(path)
            assert answer.status_code == 400
            assert answer.headers.get("connection") != "close"
        answer = client.put("/account/user", content=b'{"name": "a\\ud800", "email": "a@b.co"}')
        assert answer.status_code == 400 and answer.json()["rule"] == "lone_surrogate"
        assert answer.headers.get("connection") != "close"
        assert client.get("/smartlock").status_code == 200
