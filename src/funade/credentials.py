"""The admin key saved for the local CLI and SDK (``$FUNADE_HOME/credentials``, mode 0600).

Its own module, free of the store: a client reads it without importing SQLAlchemy or Alembic.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from funade.settings import Settings

__all__ = ["read_credentials", "write_credentials"]


def read_credentials(settings: Settings) -> str | None:
    path = settings.credentials_file
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        key = data.get("api_key")
    except (OSError, ValueError, AttributeError):
        return None
    return key if isinstance(key, str) else None


def write_credentials(settings: Settings, key: str) -> Path:
    """Store ``key`` for the local CLI and SDK, readable only by this user (mode 0600)."""
    path = settings.credentials_file
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"api_key": key}, handle)
    os.chmod(path.with_suffix(".tmp"), 0o600)
    os.replace(path.with_suffix(".tmp"), path)
    return path
