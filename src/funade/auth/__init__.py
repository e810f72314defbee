"""API keys, scopes and the principal a request acts as."""

from funade.auth.keys import KeyParts, generate_key, hash_secret, parse_key
from funade.auth.principal import SCOPES, Principal, Scope

__all__ = [
    "SCOPES",
    "KeyParts",
    "Principal",
    "Scope",
    "generate_key",
    "hash_secret",
    "parse_key",
]
