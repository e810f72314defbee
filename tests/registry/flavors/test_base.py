"""Helpers every flavor shares: optional imports, options and metadata checks."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from funade.errors import InvalidArtifactError, InvalidInputError, ModelLoadError
from funade.registry.flavors.base import PackageFile, check_options, parse_metadata, require


def test_missing_framework_says_which_extra_to_install() -> None:
    with pytest.raises(ModelLoadError) as info:
        require("funade_no_such_framework", extra="onnx", needed_by="The onnx flavor")
    error = info.value
    assert "The onnx flavor needs the Python package 'funade_no_such_framework'" in str(error)
    assert "pip install 'funade[onnx]'" in str(error)
    assert (error.field, error.value) == ("extra", "onnx")


def test_unknown_option_lists_the_known_ones() -> None:
    with pytest.raises(InvalidInputError) as info:
        check_options({"compress": 3}, {"serialization": "how to save"}, flavor="sklearn")
    assert info.value.field == "options.compress"
    assert "serialization: how to save" in str(info.value)


class Meta(BaseModel):
    file: str


def test_bad_metadata_is_an_invalid_artifact_on_the_server_and_a_load_error_elsewhere() -> None:
    with pytest.raises(InvalidArtifactError) as server:
        parse_metadata(Meta, {}, flavor="x", on_server=True)
    assert "'file'" in str(server.value)
    with pytest.raises(ModelLoadError):
        parse_metadata(Meta, {"file": 1}, flavor="x")


def test_package_file_knows_when_it_is_whole() -> None:
    assert PackageFile(head=b"abc", size=3).complete
    assert not PackageFile(head=b"abc", size=4).complete
