from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from funade.artifacts import CHUNK_SIZE, parse_digest, sha256_bytes, sha256_file
from funade.errors import InvalidInputError

EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ABC = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_sha256_bytes_matches_known_vectors() -> None:
    assert sha256_bytes(b"") == EMPTY
    assert sha256_bytes(b"abc") == ABC


def test_sha256_file_streams_files_larger_than_a_chunk(tmp_path: Path) -> None:
    data = bytes(range(256)) * (CHUNK_SIZE // 256) * 3 + b"tail"
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == "sha256:" + hashlib.sha256(data).hexdigest()
    assert CHUNK_SIZE == 1024 * 1024


def test_parse_digest_accepts_and_normalizes_case() -> None:
    assert parse_digest(ABC) == ABC
    assert parse_digest(ABC.upper()) == ABC
    assert parse_digest("Sha256:" + ABC.removeprefix("sha256:").upper()) == ABC


@pytest.mark.parametrize(
    "text",
    [
        "../etc/passwd",
        "sha256:../../../../etc/passwd",
        "sha256:" + "a" * 30 + "/" + "a" * 33,
        "sha256:" + "a" * 30 + ".." + "a" * 32,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "a" * 64,
        "md5:" + "a" * 32,
        "sha512:" + "a" * 64,
        "sha256:" + "g" * 64,
        "sha256: " + "a" * 63,
        ABC + "\n",
        " " + ABC,
        "",
    ],
)
def test_parse_digest_rejects_anything_else(text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_digest(text)
    error = caught.value
    assert error.field == "digest"
    assert error.value == text
    assert "expected 'sha256:' followed by 64 hex characters" in str(error)
    assert error.fix is not None
    assert "sha256sum" in error.fix


def test_parse_digest_error_message_names_the_value_and_the_field() -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_digest("sha256:abc", field="expected_digest")
    assert caught.value.message == (
        "'sha256:abc' is not a digest; expected 'sha256:' followed by 64 hex characters."
    )
    assert caught.value.field == "expected_digest"


def test_parse_digest_shortens_huge_values_in_the_message() -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_digest("x" * 10_000)
    assert len(caught.value.message) < 200
    assert caught.value.value == "x" * 10_000
