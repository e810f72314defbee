"""Projects isolate everything: a key of project A sees nothing of project B."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from funade.client import Client
from funade.errors import ConflictError, InvalidNameError, NotFoundError, PermissionDeniedError


def test_create_and_list_projects(admin: Client) -> None:
    admin.create_project("sandbox", "experiments")
    names = [p.name for p in admin.list_projects()]
    assert names == ["default", "sandbox"]
    with pytest.raises(ConflictError, match="already exists"):
        admin.create_project("sandbox")


@pytest.mark.parametrize("name", ["Sandbox", "a/b", "../x", "-x", "x" * 64, ""])
def test_bad_project_names_are_refused(admin: Client, name: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        admin.create_project(name)
    assert info.value.field == "name"
    assert "lowercase" in str(info.value)


def test_project_key_sees_only_its_project(admin: Client, key_for: Callable[..., Client]) -> None:
    admin.create_project("b")
    a_writer = key_for(["write"], project="default")
    b_writer = key_for(["write"], project="b")
    assert [p.name for p in a_writer.list_projects()] == ["default"]
    with pytest.raises(NotFoundError, match="Project 'b' does not exist"):
        a_writer.list_models(project="b")
    with pytest.raises(NotFoundError, match="Project 'default' does not exist"):
        b_writer.list_models(project="default")
    with pytest.raises(PermissionDeniedError):
        a_writer.create_project("c")
