"""Where a model server's model comes from: the local home's store, a control plane over HTTP,
or a package on disk; references pinned to a version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import funade
from funade.client import Client
from funade.errors import InvalidInputError, NotFoundError
from funade.serving.source import (
    _LocalRegistry,
    _resolve_in_sqlite,
    _sqlite_file,
    load_source,
    pin_source,
)
from funade.settings import Settings
from tests.serving.models import Arithmetic

SAMPLE = {"x": np.ones((2, 2))}


def test_a_local_home_is_read_without_a_server(admin: Client, settings: Settings) -> None:
    funade.log_model(Arithmetic(), "calc", sample_input=SAMPLE, client=admin, alias="live")
    funade.log_model(Arithmetic(), "calc", sample_input=SAMPLE, client=admin)
    assert settings.url is None
    loaded = load_source("calc@live", settings)
    assert (loaded.name, loaded.version) == ("calc", "1")
    assert loaded.digest is not None
    assert loaded.digest.startswith("sha256:")
    assert (settings.resolved_cache_dir / "blobs" / loaded.digest[7:]).is_file()
    assert pin_source("calc@live", settings) == "calc:1"
    assert pin_source("calc", settings) == "calc:2"
    with pytest.raises(NotFoundError) as caught:
        load_source("nosuch:1", settings)
    assert caught.value.message == "Model 'nosuch' does not exist in project 'default'."


def test_a_sqlite_store_is_read_with_one_query_that_answers_what_the_store_answers(
    admin: Client, settings: Settings, tmp_path: Path
) -> None:
    for _ in range(4):
        funade.log_model(Arithmetic(), "calc", sample_input=SAMPLE, client=admin)
    admin.set_alias("calc", "live", 2)
    admin.update_version("calc", 3, archived=True)
    admin.delete_version("calc", 4)
    file = _sqlite_file(settings.resolved_database_url)
    assert file is not None
    store = _LocalRegistry(settings)
    try:
        for ref in ("1", "2", "3", "latest", "live"):
            assert _resolve_in_sqlite(file, "default", "calc", ref) == store._resolve_in_store(
                "calc", ref
            )
        assert _resolve_in_sqlite(file, "default", "calc", "latest")[0] == 2  # type: ignore[index]
        # What it does not find, the store is asked for (and gives the error).
        for model, ref in (("calc", "4"), ("calc", "9"), ("calc", "staging"), ("nosuch", "1")):
            assert _resolve_in_sqlite(file, "default", model, ref) is None
            with pytest.raises(NotFoundError):
                store.resolve(model, ref)
    finally:
        store.close()
    assert _resolve_in_sqlite(file, "elsewhere", "calc", "1") is None
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    assert _resolve_in_sqlite(garbage, "default", "calc", "1") is None
    assert _sqlite_file("postgresql+psycopg://u@h/db") is None
    assert _sqlite_file("sqlite:///:memory:") is None


def test_serving_from_a_sqlite_home_does_not_import_sqlalchemy(
    admin: Client, settings: Settings
) -> None:
    """SQLAlchemy and the store's schema take 0.3 s of a model server's cold start."""
    funade.log_model(Arithmetic(), "calc", sample_input=SAMPLE, client=admin, alias="live")
    code = (
        "import sys\n"
        "from funade.serving.source import load_source\n"
        "from funade.settings import load_settings\n"
        "loaded = load_source('calc@live', load_settings())\n"
        "print(loaded.version, 'sqlalchemy' in sys.modules)\n"
    )
    env = {
        **os.environ,
        "FUNADE_HOME": str(settings.home),
        "FUNADE_DATABASE_URL": settings.resolved_database_url,
        "PYTHONPATH": str(Path(__file__).parents[2]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["1", "False"]


def test_a_control_plane_is_asked_over_http(
    admin: Client, app_url: str, admin_key: str, settings: Settings, tmp_path: Path
) -> None:
    funade.log_model(Arithmetic(), "calc", sample_input=SAMPLE, client=admin, alias="live")
    elsewhere = Settings(home=tmp_path / "replica", url=app_url, api_key=admin_key)  # type: ignore[arg-type]
    loaded = load_source("calc@live", elsewhere)
    assert (loaded.name, loaded.version) == ("calc", "1")
    np.testing.assert_array_equal(
        loaded.model.predict_conformed({"x": np.array([[1.0, 2.0]])})["total"], [3.0]
    )
    assert pin_source("calc@live", elsewhere) == "calc:1"
    assert (tmp_path / "replica" / "cache" / "blobs").is_dir()  # fetched into its own cache


def test_an_expected_digest_refuses_another_package_before_fetching_it(
    admin: Client, app_url: str, admin_key: str, tmp_path: Path
) -> None:
    """What an image built with `funade build --fetch` serves: its version, or nothing."""
    version = funade.log_model(Arithmetic(), "calc", sample_input=SAMPLE, client=admin).version
    digest = admin.get_version("calc", str(version)).artifact.digest
    elsewhere = Settings(home=tmp_path / "replica", url=app_url, api_key=admin_key)  # type: ignore[arg-type]
    other = "sha256:" + "0" * 64
    with pytest.raises(InvalidInputError) as caught:
        load_source("calc:1", elsewhere, expect_digest=other)
    assert caught.value.message == (f"calc:1 at {app_url} has the package {digest}, not {other}.")
    assert caught.value.field == "digest"
    assert "dev.funade.digest" in str(caught.value)
    assert not (tmp_path / "replica" / "cache" / "blobs").exists()  # nothing was fetched
    assert load_source("calc:1", elsewhere, expect_digest=digest).digest == digest


def test_a_home_without_a_registry_says_so(tmp_path: Path) -> None:
    empty = Settings(home=tmp_path / "empty")  # type: ignore[arg-type]
    with pytest.raises(NotFoundError) as caught:
        load_source("calc:1", empty)
    assert caught.value.message == (
        f"There is no registry at {tmp_path / 'empty'} yet "
        f"({tmp_path / 'empty' / 'funade.db'} does not exist)."
    )
    assert caught.value.field == "source"


def test_a_package_file_is_served_from_the_cache(tmp_path: Path) -> None:
    from funade.artifacts import pack_directory
    from tests.serving.fakes import arithmetic_package

    blob = pack_directory(arithmetic_package(tmp_path / "pkg"), tmp_path / "calc.tar")
    settings = Settings(home=tmp_path / "home")  # type: ignore[arg-type]
    loaded = load_source(str(tmp_path / "calc.tar"), settings)
    assert loaded.name == "calc"
    assert loaded.digest == blob.digest
    assert pin_source(str(tmp_path / "calc.tar"), settings) == str(tmp_path / "calc.tar")
