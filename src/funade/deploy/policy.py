"""What the gateway enforces for one deployment: who may call it, from where, how often."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from funade.errors import InvalidInputError


class RateLimit(BaseModel):
    """A token bucket: ``per_second`` tokens refill continuously, up to ``burst``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_second: float = Field(gt=0, description="Sustained requests per second.")
    burst: int = Field(default=0, ge=0, description="Bucket size (0: per_second, at least 1).")

    @property
    def capacity(self) -> float:
        return float(self.burst) if self.burst else max(1.0, self.per_second)


class Policy(BaseModel):
    """A deployment's gateway rules; every field has a safe default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    public: bool = Field(
        default=False,
        description="Serve without an API key (the allowlist and limits still apply).",
    )
    allow_cidrs: list[str] = Field(
        default_factory=list,
        description="Client addresses allowed (e.g. ['10.0.0.0/8']); empty: any address.",
    )
    rate_limit: RateLimit | None = Field(
        default=None, description="Limit for the whole deployment, across keys."
    )
    key_rate_limit: RateLimit | None = Field(default=None, description="Limit for each key.")
    max_body_bytes: int = Field(
        default=16 * 1024**2, gt=0, le=1024**3, description="Largest request body (413 above)."
    )
    timeout_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="Longest a request may take through the gateway."
    )

    @field_validator("allow_cidrs")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not an address or CIDR block (e.g. '192.168.1.0/24')"
                ) from None
        return values


def merge_policy(stored: Mapping[str, Any] | None, patch: Mapping[str, Any]) -> Policy:
    """``patch`` applied to the ``stored`` policy as a JSON merge patch (RFC 7396): a field left
    out keeps its value, a field set to null goes back to its default, an object (a rate limit)
    merges field by field, a list (``allow_cidrs``) is replaced whole. So a change of one field
    never resets another, and never opens a deployment by omission."""
    base = Policy.model_validate(stored or {}).model_dump(mode="json")
    merged = _merge(base, patch)
    try:
        return Policy.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(["policy", *(str(p) for p in first["loc"])])
        raise InvalidInputError(
            f"{field!r} is invalid: {first['msg']}.",
            field=field,
            value=first.get("input"),
            fix="Send only the policy fields to change (the rest keep their values; null resets "
            "one to its default); see the Policy schema at /docs.",
        ) from None


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, Mapping):
        return patch
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out
