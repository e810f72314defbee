"""The environment a replica or a pipeline step starts with: an allowlist of the parent's
variables (locale, time zone, search path), never the rest (database URLs, cloud credentials,
the admin key), plus what funade gives it on purpose.

A deployment's ``runtime.env`` is the user's, and may not set variables that make an
interpreter or the dynamic loader run other code (``PYTHONPATH``, ``LD_PRELOAD`` …): a package
whose loading runs no code must stay that way whatever its deployment's environment says.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from funade.errors import InvalidInputError

__all__ = ["FORBIDDEN", "check_runtime_env", "forbidden_names", "minimal_env"]

PASSED = frozenset({"PATH", "LANG", "LANGUAGE", "TZ", "TZDIR", "TERM", "NO_COLOR"})
"""Variables of the parent that every child keeps (plus every ``LC_*``)."""
STEP_PASSED = frozenset(
    {"HOME", "USER", "LOGNAME", "TMPDIR", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE"}
)
"""More that a pipeline step started from a person's shell keeps (its code runs anyway): where
its imports are, and whether Python may cache their bytecode (a pipeline file rewritten within
a second at the same size would otherwise load from a stale cache)."""

FORBIDDEN = re.compile(
    r"(PYTHON.*|LD_.*|DYLD_.*|GCONV_PATH|GETCONF_DIR|LOCPATH|NLSPATH|HOSTALIASES|RES_OPTIONS"
    r"|MALLOC_.*|GLIBC_TUNABLES|OPENSSL_.*|SSLKEYLOGFILE|BASH_ENV|ENV|SHELLOPTS|PS4|IFS|PATH"
    r"|HOME|TMPDIR|FUNADE_.*|PERL5.*|RUBY.*|NODE_OPTIONS|JAVA_TOOL_OPTIONS|_JAVA_OPTIONS)",
    re.IGNORECASE,
)
"""Names a deployment's ``runtime.env`` may not set: what makes Python, the dynamic loader, libc,
OpenSSL or a shell load code or files of the caller's choosing, and what funade sets itself."""


def minimal_env(
    extra: Mapping[str, str] | None = None,
    *,
    keep: frozenset[str] = frozenset(),
    parent: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The allowlisted variables of ``parent`` (default: this process's environment), those in
    ``keep`` too, then ``extra`` on top."""
    source = os.environ if parent is None else parent
    env = {
        name: value
        for name, value in source.items()
        if name in PASSED or name in keep or name.startswith("LC_")
    }
    env.setdefault("PATH", os.defpath)
    env.update(extra or {})
    return env


def forbidden_names(env: Mapping[str, str]) -> list[str]:
    """The names in ``env`` a deployment may not set."""
    return sorted(name for name in env if FORBIDDEN.fullmatch(name))


def check_runtime_env(env: Mapping[str, str], *, field: str = "runtime.env") -> dict[str, str]:
    """``env`` if it sets nothing forbidden; else a 422 naming the first such variable."""
    for name, value in env.items():
        if not isinstance(name, str) or not name or "=" in name or "\x00" in name + str(value):
            raise InvalidInputError(
                f"{name!r} is not an environment variable name.",
                field=f"{field}.{name}",
                value=name,
                fix="Use names of letters, digits and '_'.",
            )
    bad = forbidden_names(env)
    if bad:
        raise InvalidInputError(
            f"A deployment's environment may not set {bad[0]}: it would make the model server "
            "load code or files of its own choosing.",
            field=f"{field}.{bad[0]}",
            value=bad[0],
            fix="Remove it. Ship code inside the model package (a python_class or torch model), "
            "which needs the deploy-code scope; see docs/security.md.",
        )
    return dict(env)
