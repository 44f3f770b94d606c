"""Tests for keyhouse.rules.secrets_."""

from __future__ import annotations

import base64
import hashlib
import re

from keyhouse.rules.secrets_ import hash_token, new_api_token, new_link_secret


def test_api_token_shape_and_entropy() -> None:
    token = new_api_token()
    assert token.startswith("kh_")
    body = token[3:]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", body)
    assert len(base64.urlsafe_b64decode(body + "=")) == 32
    assert len({new_api_token() for _ in range(200)}) == 200


def test_hash_token_is_sha256_hex() -> None:
    assert hash_token("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert hash_token("kh_ä") == hashlib.sha256("kh_ä".encode()).hexdigest()
    assert hash_token("a") != hash_token("b")


def test_a_guest_link_secret_has_256_random_bits_in_url_safe_base64() -> None:
    secrets = [new_link_secret() for _ in range(1000)]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", secret) for secret in secrets)
    assert all(len(base64.urlsafe_b64decode(secret + "=")) == 32 for secret in secrets)
    assert len(set(secrets)) == 1000
