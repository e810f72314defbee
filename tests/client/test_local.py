"""The in-process API (no FUNADE_URL): stopped with the client, waiting for it or not."""

from __future__ import annotations

import time
from pathlib import Path

from funade.client import Client
from funade.settings import Settings


def test_closing_stops_the_in_process_api(tmp_path: Path) -> None:
    client = Client(settings=Settings(home=tmp_path / "home"))
    assert client.is_local
    local = client._local
    assert local is not None
    assert client.list_models().items == []
    client.close()
    assert not local.socket_path.parent.exists(), "gone by the time close() returns"
    assert local._thread is not None
    assert not local._thread.is_alive()


def test_a_client_that_does_not_wait_leaves_the_api_stopping(tmp_path: Path) -> None:
    """What the CLI does, its process ending next: close() returns at once and the server
    stops on its own, removing its socket's directory."""
    client = Client(settings=Settings(home=tmp_path / "home"), wait_on_close=False)
    local = client._local
    assert local is not None
    reporter = client.with_key(client.api_key or "")
    assert reporter.list_models().items == []
    reporter.close()  # shares the server, and does not stop it
    assert local._thread is not None
    assert local._thread.is_alive()
    client.close()
    deadline = time.monotonic() + 30
    while local._thread.is_alive() or local.socket_path.parent.exists():
        assert time.monotonic() < deadline, "the in-process API did not stop"
        time.sleep(0.02)
