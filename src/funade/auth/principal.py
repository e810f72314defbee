"""Who a request acts as, and what it may do.

A key's *scopes* are what a person gave it (``admin``, ``write``, ``read``, ``predict``,
``deploy-code``); each scope grants *capabilities*, which routes ask for. A run token (kind
``run``, made by the control plane for one pipeline run) has the internal scope ``run`` (read,
upload artifacts, report its own run) and the *grants* its pipeline declared (``register:<model>``,
``deploy:<model>``), capped by what the key that started the run may do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from funade.auth.ipallow import ip_allowed, parse_networks
from funade.errors import NotFoundError, PermissionDeniedError

Scope = Literal["admin", "write", "read", "predict", "deploy-code", "upload", "run"]
SCOPES: tuple[Scope, ...] = ("admin", "write", "read", "predict", "deploy-code")
"""The scopes a person may give a key."""
RUN_SCOPE: Scope = "run"
"""The scope of a run token (never given to a key by a person)."""
CODE_SCOPE: Scope = "deploy-code"
"""Deploying a model whose loading runs code (pickles, Python classes), and scheduling code."""
ModelAction = Literal["register", "deploy"]
MODEL_ACTIONS: tuple[ModelAction, ...] = ("register", "deploy")

# A scope grants itself and the capabilities listed here.
_IMPLIES: dict[str, frozenset[str]] = {
    "admin": frozenset({*SCOPES, "upload"}),
    "write": frozenset({"write", "read", "upload"}),
    "read": frozenset({"read"}),
    "predict": frozenset({"predict"}),
    "deploy-code": frozenset({"deploy-code"}),
    "run": frozenset({"run", "read", "upload"}),
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
    """key, session (a dashboard sign-in), group (a try-it token) or run (a run's token)."""
    allow_cidrs: tuple[str, ...] = ()
    """Networks the key may be used from; empty: anywhere."""
    run_id: int | None = None
    """The run a run token belongs to."""
    grants: frozenset[str] = frozenset()
    """A run token's model permissions, e.g. ``register:churn``."""
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
        if scope == RUN_SCOPE and scope not in self.granted:
            raise PermissionDeniedError(
                f"Only a run's own token may report it; key {self.name!r} is not one.",
                field="authorization",
                value=self.kind,
                fix="The runner gets the token when it creates the run (or starts an attempt) "
                "and reports with it; nothing else can write a run's steps or cache entries.",
            )
        if scope not in self.granted:
            needed = "write" if scope == "upload" else scope  # a capability of write keys
            raise PermissionDeniedError(
                f"Key {self.name!r} has scopes {sorted(self.scopes)}; this needs {needed!r}.",
                field="scope",
                value=sorted(self.scopes),
                fix=f"Use a key with the {needed!r} scope (`funade keys create --scope {needed}`).",
            )

    def may(self, action: ModelAction, project: str, model: str) -> bool:
        """Whether this key may ``action`` (register versions of, or deploy) ``model`` in
        ``project``: with the write scope there, or a run token's grant for that model."""
        if not self.can_see(project):
            return False
        return "write" in self.granted or f"{action}:{model}" in self.grants

    def require_model(self, action: ModelAction, project: str, model: str) -> None:
        """Raise unless :meth:`may`; a key of another project learns nothing (404)."""
        if not self.can_see(project):
            self.require("read", project)  # the 404 of a project it cannot see
        if self.may(action, project, model):
            return
        if self.kind == "run":
            raise PermissionDeniedError(
                f"Run {self.run_id}'s token may not {action} model {model!r}: its pipeline "
                f"declares {sorted(self.grants) or 'no permissions'}.",
                field="permissions",
                value=f"{action}:{model}",
                fix=f"Declare it: @funade.pipeline(permissions=['{action}:{model}']) (the key "
                "that starts the run must have the write scope in the project).",
            )
        self.require("write", project)

    def require_code(self, project: str, *, trusted: bool, what: str) -> None:
        """Raise unless this key may make the platform run code (``what`` says which) in
        ``project``: it has the ``deploy-code`` scope, or an admin marked the project as
        trusting code."""
        if trusted or CODE_SCOPE in self.granted:
            return
        raise PermissionDeniedError(
            f"{what} runs code when it is loaded, and key {self.name!r} has no "
            f"{CODE_SCOPE!r} scope; project {project!r} does not trust code (trust_code is "
            "off).",
            field="scope",
            value=sorted(self.scopes),
            fix=f"Use a key with the {CODE_SCOPE!r} scope (`funade keys create NAME --scope "
            f"write --scope {CODE_SCOPE}`), have an admin run `funade projects update "
            f"{project} --trust-code`, or register the model in a format that loads no code "
            "(skops, ONNX, XGBoost, LightGBM).",
        )
