"""Content digests: the names blobs are stored under.

A digest is the text ``"sha256:"`` followed by 64 lowercase hex characters. Digests arrive from
clients and end up in storage paths, so :func:`parse_digest` is the one gate every digest passes
through: it accepts only that exact shape (nothing that could be a path) and normalizes case.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Protocol

from funade.errors import InvalidInputError

__all__ = [
    "CHUNK_SIZE",
    "EMPTY_DIGEST",
    "PREFIX",
    "digest_hex",
    "format_digest",
    "parse_digest",
    "sha256_bytes",
    "sha256_file",
]

CHUNK_SIZE = 1024 * 1024
PREFIX = "sha256:"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_SHOWN_CHARS = 80


class _Hasher(Protocol):
    def hexdigest(self) -> str: ...


def parse_digest(text: str, *, field: str = "digest") -> str:
    """Return ``text`` as a normalized (lowercase) digest, or raise ``InvalidInputError``."""
    normalized = text.lower() if isinstance(text, str) else ""
    if _DIGEST.fullmatch(normalized) is None:
        shown = repr(text)
        if len(shown) > _SHOWN_CHARS:
            shown = shown[:_SHOWN_CHARS] + "..."
        raise InvalidInputError(
            f"{shown} is not a digest; expected 'sha256:' followed by 64 hex characters.",
            field=field,
            value=text,
            fix="Pass the digest funade reported for the artifact, e.g. 'sha256:e3b0c442...'; "
            "compute one with `sha256sum FILE`.",
        )
    return normalized


def digest_hex(digest: str) -> str:
    """The 64 hex characters of a digest (after validating it)."""
    return parse_digest(digest)[len(PREFIX) :]


def format_digest(hasher: _Hasher) -> str:
    """The digest string of a finished ``hashlib.sha256()`` object."""
    return PREFIX + hasher.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Digest of ``data``."""
    return format_digest(hashlib.sha256(data))


def sha256_file(path: Path) -> str:
    """Digest of the file at ``path``, read in ``CHUNK_SIZE`` pieces (constant memory)."""
    hasher = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_SIZE):
            hasher.update(chunk)
    return format_digest(hasher)


EMPTY_DIGEST = sha256_bytes(b"")
