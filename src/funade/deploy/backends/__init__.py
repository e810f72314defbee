"""Where replicas run, behind one small interface (``Backend``)."""

from funade.deploy.backends.base import (
    Backend,
    Replica,
    ReplicaSpec,
    ReplicaState,
    RuntimeConfig,
)

__all__ = ["Backend", "Replica", "ReplicaSpec", "ReplicaState", "RuntimeConfig"]
