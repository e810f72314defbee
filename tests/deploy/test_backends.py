"""Choosing the backend by the ``backend`` setting: the local one, and clear errors for the ones
this version does not ship yet or whose extra is missing, from the API and from `funade up`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from funade.artifacts import ArtifactStore
from funade.deploy.backends import BACKENDS, BackendContext, BackendModule, make_backend
from funade.deploy.backends.local import LocalBackend
from funade.errors import InvalidInputError
from funade.sandbox.layout import Sandbox
from funade.settings import Settings
from tests.conftest import Result


def context(settings: Settings) -> BackendContext:
    return BackendContext(
        sandbox=Sandbox.from_settings(settings),
        fetch=ArtifactStore.from_settings(settings).open,
        api_url=lambda: "http://127.0.0.1:8470",
    )


def test_local_is_the_default_backend(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    backend = make_backend(settings, context(settings))
    try:
        assert isinstance(backend, LocalBackend)
        assert backend.root == settings.home / "replicas"
        assert backend.api_url() == "http://127.0.0.1:8470"
        assert backend.replicas() == []
        backend.stop_all(grace_seconds=1)  # nothing to stop: returns at once
    finally:
        backend.close()


@pytest.fixture
def unshipped(monkeypatch: pytest.MonkeyPatch) -> str:
    """A backend name the settings accept whose module this version does not ship (every
    backend the settings name ships now; one that did not would be listed as this one is)."""
    monkeypatch.setitem(
        BACKENDS, "podman", BackendModule("funade.deploy.backends.not_yet", tracked_by="issue 22")
    )
    return "podman"


def test_a_backend_not_shipped_yet_is_refused_naming_its_issue(
    tmp_path: Path, unshipped: str
) -> None:
    name = unshipped
    settings = Settings(home=tmp_path / "home", backend=name)
    with pytest.raises(InvalidInputError, match="not available in this version") as info:
        make_backend(settings, context(settings))
    assert f"The {name} backend is not available" in str(info.value)
    assert "issue 22 tracks it" in str(info.value)
    assert info.value.field == "backend"
    assert info.value.value == name
    assert info.value.fix is not None
    assert 'backend = "local"' in info.value.fix
    assert not (settings.home / "replicas").exists(), "nothing was started"


def test_a_backend_whose_extra_is_missing_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        BACKENDS, "kubernetes", BackendModule("tests.deploy.needs_a_missing_library", "kubernetes")
    )
    settings = Settings(home=tmp_path / "home", backend="kubernetes")
    with pytest.raises(InvalidInputError, match="needs the module") as info:
        make_backend(settings, context(settings))
    assert "'funade_test_no_such_library', which is not installed" in str(info.value)
    assert info.value.fix == "Install it: pip install 'funade[kubernetes]'."
    assert info.value.field == "backend"


def test_a_backend_name_settings_would_refuse_is_refused_here_too(tmp_path: Path) -> None:
    settings = Settings.model_construct(home=tmp_path / "home", backend="nomad")
    with pytest.raises(InvalidInputError, match="There is no backend 'nomad'") as info:
        make_backend(settings, context(Settings(home=tmp_path / "home")))
    assert info.value.fix == "Set `backend` to one of docker, kubernetes, local, podman."


def test_funade_up_refuses_an_unavailable_backend_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Result], unshipped: str
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("FUNADE_HOME", str(home))
    monkeypatch.setenv("FUNADE_BACKEND", "podman")
    done = cli("up", "--port", "0", "--gateway-port", "0")
    assert done.code == 2
    assert "The podman backend is not available in this version of funade yet" in done.err
    assert "issue 22 tracks it" in done.err
    assert not home.exists(), "no store, no gateway, no lock"


def test_a_stored_runtime_above_a_later_limit_serves_at_the_limit() -> None:
    """Revisions stored before the limits existed still load (the controller reads them all
    each pass); what is new is refused."""
    from pydantic import ValidationError

    from funade.deploy.backends.base import RuntimeConfig

    old = {"max_batch_size": 2**40, "timeout_ms": 1e12, "max_latency_ms": 5.0, "workers": 2}
    loaded = RuntimeConfig.stored(old)
    assert (loaded.max_batch_size, loaded.timeout_ms) == (1_048_576, 3_600_000)
    assert (loaded.max_latency_ms, loaded.workers) == (5.0, 2)
    with pytest.raises(ValidationError, match="less than or equal to 1048576"):
        RuntimeConfig.model_validate(old)
