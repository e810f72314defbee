"""The Python client of the control-plane REST API (used by the SDK, the CLI and people): the
connection and its lifetime here, the calls of each resource in a module of their own
(``projects``, ``models``, ``artifacts``, ``keys``, ``deployments``, ``runs``, ``cache``,
``schedules``), mixed into one ``Client``."""

from __future__ import annotations

import httpx

from funade.client.artifacts import ArtifactsAPI
from funade.client.cache import CacheAPI
from funade.client.deployments import DeploymentsAPI
from funade.client.keys import KeysAPI
from funade.client.models import ModelsAPI
from funade.client.projects import ProjectsAPI
from funade.client.runs import RunsAPI
from funade.client.schedules import SchedulesAPI
from funade.credentials import read_credentials
from funade.running import RunningUp, find_up
from funade.settings import Settings, load_settings

__all__ = ["Client"]

UNIX_PREFIX = "unix:"
UNIX_BASE = "http://funade.local"


class Client(
    ProjectsAPI,
    ModelsAPI,
    ArtifactsAPI,
    KeysAPI,
    DeploymentsAPI,
    RunsAPI,
    CacheAPI,
    SchedulesAPI,
):
    """Talks to a control plane at ``url``; with no URL, to the `funade up` running over
    ``$FUNADE_HOME`` (``funade.running``), else to one it runs in-process over that home
    (``funade.client.local``).

    >>> client = funade.Client()            # local, or FUNADE_URL / FUNADE_API_KEY
    >>> client.get_version("churn", "production").version
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        project: str | None = None,
        *,
        settings: Settings | None = None,
        timeout: float = 60.0,
        wait_on_close: bool = True,
    ) -> None:
        """``wait_on_close=False``: :meth:`close` tells the in-process API (no ``url``) to stop
        and returns at once, for a process that ends next (the CLI)."""
        self.settings = settings if settings is not None else load_settings()
        self._wait_on_close = wait_on_close
        self.project = project or self.settings.project
        url = url or self.settings.url
        key = api_key or (
            self.settings.api_key.get_secret_value() if self.settings.api_key else None
        )
        self._local = None
        self._owns_local = True
        self.running_up: RunningUp | None = None
        """The `funade up` over this home that this client found and talks to (no URL given)."""
        if not url:
            self.running_up = find_up(self.settings.home)
            url = self.running_up.url if self.running_up else None
        if url and url.startswith(UNIX_PREFIX):
            # A control plane on a Unix socket: the in-process API of a runner, as its steps
            # reach it (``unix:/path/api.sock``).
            transport: httpx.BaseTransport | None = httpx.HTTPTransport(
                uds=url.removeprefix(UNIX_PREFIX)
            )
            base_url = UNIX_BASE
        elif url:
            transport = None
            base_url = url.rstrip("/")
            key = key or read_credentials(self.settings)
        else:
            from funade.client.local import LocalServer

            self._local = LocalServer(self.settings)
            self._local.start()
            transport = httpx.HTTPTransport(uds=str(self._local.socket_path))
            base_url = UNIX_BASE
            key = key or self._local.admin_key
        self.url = base_url
        self._transport = transport
        self._timeout = timeout
        self._http = self._make_http(key)

    @property
    def api_key(self) -> str | None:
        """The key this client authenticates with."""
        header = self._http.headers.get("authorization", "")
        return header.removeprefix("Bearer ") or None

    def _make_http(self, key: str | None) -> httpx.Client:
        headers = {"user-agent": "funade-python"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        return httpx.Client(
            base_url=self.url,
            headers=headers,
            transport=self._transport,
            timeout=httpx.Timeout(self._timeout, connect=10.0),
        )

    def with_key(self, key: str) -> Client:
        """A client of the same control plane (the in-process one included, which it shares
        and does not stop) that authenticates with ``key``, e.g. a run's token."""
        other = Client.__new__(Client)
        other.settings, other.project, other.url = self.settings, self.project, self.url
        other._local, other._owns_local = self._local, False
        other.running_up = self.running_up
        other._wait_on_close = self._wait_on_close
        other._transport, other._timeout = self._transport, self._timeout
        other._http = other._make_http(key)
        return other

    @property
    def address(self) -> str:
        """Where another process on this machine reaches this control plane: its URL, or
        ``unix:<socket>`` for the in-process one."""
        if self._local is not None:
            return UNIX_PREFIX + str(self._local.socket_path)
        if self.settings.url and self.settings.url.startswith(UNIX_PREFIX):
            return self.settings.url
        return self.url

    def close(self) -> None:
        self._http.close()
        if self._local is not None and self._owns_local:
            self._local.stop(wait=self._wait_on_close)
        self._local = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def is_local(self) -> bool:
        return self._local is not None
