"""URLs from a host and a port: an IPv6 address in brackets, everywhere one is announced. A
gateway told `--host ::` announces ``http://[::]:PORT`` (not ``http://:::PORT``), and answers
there."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from funade.settings import Settings
from funade.store import Database
from funade.urls import host_port, http_url


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("127.0.0.1", 8000, "http://127.0.0.1:8000"),
        ("localhost", "80", "http://localhost:80"),
        ("::", 8480, "http://[::]:8480"),
        ("::1", 1, "http://[::1]:1"),
        ("fe80::1%eth0", 9, "http://[fe80::1%eth0]:9"),
        ("[::1]", 2, "http://[::1]:2"),  # in brackets already: as it is
    ],
)
def test_http_url(host: str, port: int | str, expected: str) -> None:
    assert http_url(host, port) == expected
    assert host_port(host, port) == expected.removeprefix("http://")


def test_http_url_with_another_scheme() -> None:
    assert http_url("::1", 443, "https") == "https://[::1]:443"


def test_a_gateway_on_ipv6_any_announces_a_bracketed_url(
    tmp_path: Path, settings: Settings, database: Database
) -> None:
    url_file = tmp_path / "gateway.url"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNADE_")}
    env |= {"FUNADE_HOME": str(settings.home), "FUNADE_DATABASE_URL": settings.database_url or ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "funade", "gateway", "--host", "::", "--port", "0",
         "--url-file", str(url_file)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not url_file.exists():
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the gateway did not announce its URL"
            time.sleep(0.05)
        url = url_file.read_text()
        assert url.startswith("http://[::]:"), url
        port = int(url.rsplit(":", 1)[1])
        answer = httpx.get(f"http://[::1]:{port}/healthz", timeout=10)
        assert answer.status_code == 200
        assert answer.json()["status"] == "ok"
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=30)
    assert f"funade gateway at http://[::]:{port}" in out
