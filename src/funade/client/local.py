"""The control-plane API run in-process, for the SDK and CLI when no FUNADE_URL is set.

It is the same app served by uvicorn on a private Unix socket in a background thread, so local
and remote use take one code path (real HTTP, streaming bodies) with no port to open.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

from funade.api.app import create_app
from funade.artifacts import ArtifactStore
from funade.bootstrap import bootstrap, open_database
from funade.errors import FunadeError
from funade.settings import Settings


class LocalServer:
    """Serves the API over ``settings.home`` on a Unix socket until ``stop``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._dir = Path(tempfile.mkdtemp(prefix="funade-"))
        self.socket_path = self._dir / "api.sock"
        self.admin_key = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> None:
        db = open_database(self.settings, migrate=True)
        home = bootstrap(self.settings, db)
        self.admin_key = home.admin_key
        app = create_app(
            self.settings, db, ArtifactStore.from_settings(self.settings), dashboard=False
        )
        config = uvicorn.Config(
            app,
            uds=str(self.socket_path),
            log_level="warning",
            access_log=False,
            lifespan="on",
            proxy_headers=False,
            ws="none",  # no websockets here: their library is not even imported (20 ms)
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="funade-local-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise FunadeError(
                    "The in-process funade API did not start.",
                    fix="Check that FUNADE_HOME is writable, or set FUNADE_URL to a running "
                    "server.",
                )
            time.sleep(0.01)

    def _serve(self) -> None:
        assert self._server is not None
        try:
            self._server.run()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    def stop(self, *, wait: bool = True) -> None:
        """Stop serving; with ``wait`` (the default), return once stopped, which takes uvicorn
        a fifth of a second. A process about to exit (the CLI) need not wait: the server runs
        in a daemon thread, and removes its socket's directory once stopped."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None and self._thread.is_alive():
            if not wait:
                return
            self._thread.join(timeout=10)
        shutil.rmtree(self._dir, ignore_errors=True)
