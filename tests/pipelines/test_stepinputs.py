"""What a step process is given (``pipelines/stepinputs.py``): its environment, with the step's
own variables over the run's and its secrets read from their references, and its inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from funade.artifacts import ArtifactCache
from funade.errors import InvalidInputError
from funade.pipelines.engine import Input, Start, Stored
from funade.pipelines.stepinputs import step_environment, task_input

INLINE = Stored(digest="sha256:" + "1" * 64, kind="json", value=3, inline=True)
BLOB = Stored(digest="sha256:" + "2" * 64, kind="pickle")


def start(**inputs: Input) -> Start:
    return Start("train[1]", "train", 1, 1, dict(inputs), cache_key="k", cacheable=True)


def test_the_environment_names_the_step_and_its_inputs_and_the_step_has_the_last_word(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FUNADE_TEST_TOKEN", "from-env")
    (tmp_path / "key").write_text("from-file\n")
    env = step_environment(
        {"FUNADE_RUN_ID": "7", "FUNADE_PROJECT": "default"},
        start(rows=Input("value", value=10), data=Input("item", stored=BLOB, index=2)),
        {"FUNADE_PROJECT": "mine", "MODE": "fast"},
        {"TOKEN": "env:FUNADE_TEST_TOKEN", "KEY": f"file:{tmp_path / 'key'}"},
        "step 'train'",
    )
    assert env["FUNADE_RUN_ID"] == "7"
    assert env["FUNADE_RUN_STEP"] == "train[1]"
    assert json.loads(env["FUNADE_RUN_INPUTS"]) == {
        "rows": {"value": 10},
        "data": BLOB.digest + "[2]",
    }
    assert env["FUNADE_PROJECT"] == "mine"
    assert env["MODE"] == "fast"
    assert (env["TOKEN"], env["KEY"]) == ("from-env", "from-file")


def test_large_values_and_fan_ins_are_named_not_copied_into_the_lineage() -> None:
    env = step_environment(
        {},
        start(big=Input("value", value="x" * 300), many=Input("list", items=(INLINE, BLOB))),
        {},
        {},
        "w",
    )
    assert json.loads(env["FUNADE_RUN_INPUTS"]) == {
        "big": "value",
        "many": [INLINE.digest, BLOB.digest],
    }


@pytest.mark.parametrize(
    ("reference", "says"),
    [
        ("env:FUNADE_TEST_UNSET_VARIABLE", "which is not set"),
        ("file:/nonexistent/secret", "cannot be read"),
        ("plain-text", "is not a reference"),
    ],
)
def test_a_secret_that_cannot_be_read_names_it_and_the_fix(reference: str, says: str) -> None:
    with pytest.raises(InvalidInputError, match=says) as caught:
        step_environment({}, start(), {}, {"TOKEN": reference}, "step 'train'")
    assert caught.value.field == "secrets.TOKEN"
    assert caught.value.fix


def test_inputs_carry_values_inline_and_stored_blobs_by_their_path_in_the_cache(
    tmp_path: Path,
) -> None:
    cache = ArtifactCache(tmp_path / "cache", lambda digest: [b""])
    data = tmp_path / "blob"
    data.write_bytes(b"")
    empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    cache.adopt(empty, data)
    stored = Stored(digest=empty, kind="pickle")
    assert task_input(Input("value", value=[1, 2]), cache) == {"kind": "value", "value": [1, 2]}
    item = task_input(Input("item", stored=stored, index=0), cache)
    assert item["kind"] == "item"
    assert item["index"] == 0
    assert item["stored"]["path"] == str(cache.blob_path(empty))
    listed = task_input(Input("list", items=(INLINE, stored)), cache)
    assert "path" not in listed["items"][0]
    assert listed["items"][0]["value"] == 3
    assert listed["items"][1]["path"] == str(cache.blob_path(empty))
