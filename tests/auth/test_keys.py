"""Key format, hashing and scope rules."""

from __future__ import annotations

import pytest

from funade.auth import Principal, generate_key, hash_secret, parse_key
from funade.errors import AuthenticationError, NotFoundError, PermissionDeniedError


def test_generated_key_parses_back_and_is_random() -> None:
    text, parts = generate_key()
    assert text.startswith("fnd_")
    assert parse_key(text) == parts
    assert generate_key()[0] != text
    assert len(hash_secret(parts.secret)) == 64
    assert parts.secret not in hash_secret(parts.secret)


@pytest.mark.parametrize(
    "text", ["", "fnd_", "abc_123456789012_x", "fnd_short_x", "fnd_123456789012_"]
)
def test_malformed_keys_are_refused(text: str) -> None:
    with pytest.raises(AuthenticationError, match="malformed"):
        parse_key(text)


def test_scopes_imply_each_other() -> None:
    admin = Principal(key_id="a", name="a", scopes=frozenset({"admin"}), project=None)
    writer = Principal(key_id="w", name="w", scopes=frozenset({"write"}), project="p")
    predict = Principal(key_id="x", name="x", scopes=frozenset({"predict"}), project="p")
    for scope in ("admin", "write", "read", "predict"):
        admin.require(scope, "p")  # type: ignore[arg-type]
    writer.require("read", "p")
    writer.require("write", "p")
    with pytest.raises(PermissionDeniedError, match="needs 'admin'"):
        writer.require("admin", "p")
    with pytest.raises(PermissionDeniedError, match="needs 'read'"):
        predict.require("read", "p")


def test_project_keys_see_nothing_of_other_projects() -> None:
    writer = Principal(key_id="w", name="w", scopes=frozenset({"admin"}), project="a")
    with pytest.raises(NotFoundError, match="Project 'b' does not exist"):
        writer.require("read", "b")
    with pytest.raises(PermissionDeniedError, match="global"):
        writer.require("admin", None)
