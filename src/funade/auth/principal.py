"""Who a request acts as, and what it may do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from funade.auth.ipallow import ip_allowed, parse_networks
from funade.errors import NotFoundError, PermissionDeniedError

Scope = Literal["admin", "write", "read", "predict"]
SCOPES: tuple[Scope, ...] = ("admin", "write", "read", "predict")

# A scope grants itself and the scopes listed here.
_IMPLIES: dict[str, frozenset[str]] = {
    "admin": frozenset(SCOPES),
    "write": frozenset({"write", "read"}),
    "read": frozenset({"read"}),
    "predict": frozenset({"predict"}),
}


def effective_scopes(scopes: list[str] | tuple[str, ...]) -> frozenset[str]:
    out: set[str] = set()
    for scope in scopes:
        out |= _IMPLIES.get(scope, frozenset())
    return frozenset(out)


@dataclass(frozen=True)
class Principal:
    """An authenticated key. ``project`` is None for a global (all-projects) admin key."""

    key_id: str | None
    name: str
    scopes: frozenset[str]
    project: str | None
    client_ip: str | None = None
    deployment: str | None = None
    """A predict key limited to this one deployment."""
    kind: str = "key"
    """key, session (a dashboard sign-in), link (a one-time sign-in link) or group."""
    allow_cidrs: tuple[str, ...] = ()
    """Networks the key may be used from; empty: anywhere."""
    granted: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "granted", effective_scopes(tuple(self.scopes)))

    @property
    def is_global(self) -> bool:
        return self.project is None

    def check_address(self, address: str | None) -> None:
        """Raise unless the key may be used from ``address`` (its own allowlist, if any)."""
        if self.allow_cidrs and not ip_allowed(address, parse_networks(self.allow_cidrs)):
            raise PermissionDeniedError(
                f"Key {self.name!r} may be used only from {', '.join(self.allow_cidrs)}; this "
                f"request came from {address}.",
                field="client_ip",
                value=address,
                fix="Use it from an allowed network, or ask an admin for a key without the limit.",
            )

    def can_see(self, project: str) -> bool:
        return self.project is None or self.project == project

    def require(self, scope: Scope, project: str | None = None) -> None:
        """Raise unless this key has ``scope`` in ``project`` (None: across all projects).

        A key of another project gets the same answer as for a project that does not exist,
        so keys learn nothing about projects they cannot see.
        """
        if project is not None and not self.can_see(project):
            raise NotFoundError(
                f"Project {project!r} does not exist.",
                field="project",
                value=project,
                fix="Check the name with `funade projects list`.",
            )
        if project is None and not self.is_global:
            raise PermissionDeniedError(
                f"This needs a global {scope!r} key; key {self.name!r} belongs to project "
                f"{self.project!r}.",
                field="scope",
                value=sorted(self.scopes),
                fix="Use a key created without --project (e.g. the admin key `funade up` made).",
            )
        if scope not in self.granted:
            raise PermissionDeniedError(
                f"Key {self.name!r} has scopes {sorted(self.scopes)}; this needs {scope!r}.",
                field="scope",
                value=sorted(self.scopes),
                fix=f"Use a key with the {scope!r} scope (`funade keys create --scope {scope}`).",
            )
