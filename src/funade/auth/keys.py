"""The API key format: ``fnd_<id>_<secret>``, shown once, stored as the secret's SHA-256.

The id is public (it names the key in lists and the audit log); the secret is 256 random bits,
so one SHA-256 is enough to store it safely (no password stretching is needed for random keys).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from funade.errors import AuthenticationError

PREFIX = "fnd"


@dataclass(frozen=True)
class KeyParts:
    key_id: str
    secret: str


def generate_key() -> tuple[str, KeyParts]:
    """A new key: the full text to show once, and its parts."""
    parts = KeyParts(key_id=secrets.token_hex(6), secret=secrets.token_urlsafe(32))
    return f"{PREFIX}_{parts.key_id}_{parts.secret}", parts


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def parse_key(text: str) -> KeyParts:
    prefix, _, rest = text.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != PREFIX or len(key_id) != 12 or not secret:
        raise AuthenticationError(
            "The API key is malformed.",
            fix="Pass the whole key as `Authorization: Bearer fnd_...` (it is shown once when "
            "created; `funade keys create` makes a new one).",
        )
    return KeyParts(key_id=key_id, secret=secret)
