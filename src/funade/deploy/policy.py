"""What the gateway enforces for one deployment: who may call it, from where, how often."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field, field_validator


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
