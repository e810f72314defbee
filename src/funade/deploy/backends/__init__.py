"""Where replicas run, behind one small interface (``Backend``), one module per backend.

``make_backend(settings, context)`` picks the module by the ``backend`` setting and imports it
only then, so a backend's dependencies (an extra such as ``funade[kubernetes]``) are needed only
where that backend is chosen. A backend module exposes ``create_backend(settings, context) ->
Backend``; adding one is a module here, a line in ``BACKENDS`` and, if it needs libraries, an
extra in pyproject.toml.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from funade.deploy.backends.base import (
    Backend,
    Replica,
    ReplicaSpec,
    ReplicaState,
    RuntimeConfig,
)
from funade.errors import InvalidInputError

if TYPE_CHECKING:
    from funade.sandbox.layout import Sandbox
    from funade.settings import Settings

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendContext",
    "BackendFactory",
    "BackendModule",
    "Replica",
    "ReplicaSpec",
    "ReplicaState",
    "RuntimeConfig",
    "load_backend",
    "make_backend",
]


@dataclass(frozen=True)
class BackendModule:
    """Where a backend lives and what it needs installed."""

    module: str
    extra: str | None = None
    """The pip extra with its dependencies, ``funade[<extra>]``; None: none beyond funade's."""
    tracked_by: str = ""
    """The issue that tracks a backend this version does not ship yet."""


BACKENDS: dict[str, BackendModule] = {
    "local": BackendModule("funade.deploy.backends.local"),
    "podman": BackendModule("funade.deploy.backends.container"),
    "docker": BackendModule("funade.deploy.backends.container"),
    "kubernetes": BackendModule("funade.deploy.backends.kubernetes", extra="kubernetes"),
}
"""Every backend the ``backend`` setting may name, by that name."""


@dataclass(frozen=True)
class BackendContext:
    """What the composition root (``funade.platform``) hands a backend besides the settings."""

    sandbox: Sandbox
    """Where and as whom model code runs on this machine."""
    fetch: Callable[[str], Iterable[bytes]]
    """An artifact's bytes by digest (the artifact store's ``open``)."""
    api_url: Callable[[], str] = lambda: ""
    """The control plane's API URL as replicas reach it; empty until the server is bound."""


class BackendFactory(Protocol):
    """A backend module's ``create_backend``."""

    def __call__(self, settings: Settings, context: BackendContext) -> Backend: ...


def load_backend(name: str) -> BackendFactory:
    """The ``create_backend`` of backend ``name``, its module imported now; a clear error when
    there is no such backend, this version does not ship it, or its extra is not installed."""
    entry = BACKENDS.get(name)
    if entry is None:  # Settings refuses other names; a caller that built one by hand
        raise InvalidInputError(
            f"There is no backend {name!r}.",
            field="backend",
            value=name,
            fix=f"Set `backend` to one of {', '.join(sorted(BACKENDS))}.",
        )
    try:
        module = importlib.import_module(entry.module)
    except ModuleNotFoundError as exc:
        if exc.name == entry.module:  # the backend itself is not in this version
            raise InvalidInputError(
                f"The {name} backend is not available in this version of funade yet "
                f"({entry.tracked_by or 'no issue'} tracks it).",
                field="backend",
                value=name,
                fix='Set `backend = "local"` (FUNADE_BACKEND=local) to run replicas as local '
                "processes.",
            ) from None
        extra = f"funade[{entry.extra}]" if entry.extra else "funade"
        raise InvalidInputError(
            f"The {name} backend needs the module {exc.name!r}, which is not installed.",
            field="backend",
            value=name,
            fix=f"Install it: pip install '{extra}'.",
        ) from None
    factory: BackendFactory = module.create_backend
    return factory


def make_backend(settings: Settings, context: BackendContext) -> Backend:
    """The backend ``settings.backend`` names (see ``load_backend``)."""
    return load_backend(settings.backend)(settings, context)
