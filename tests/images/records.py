"""Version records (``VersionOut``) as the control plane answers them, for the pure tests."""

from __future__ import annotations

from typing import Any

from funade.api.schemas import VersionOut

DIGEST = "sha256:" + "ab" * 32
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def record(**changes: Any) -> VersionOut:
    data: dict[str, Any] = {
        "project": "default",
        "model": "churn",
        "version": 3,
        "artifact": {"digest": DIGEST, "size": 1234},
        "flavor": "sklearn",
        "signature": {"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 2]}]},
        "manifest": {
            "python_version": "3.12.4",
            "requirements": {"scikit-learn": "1.5.2", "numpy": "2.1.3", "skops": "0.10.0"},
        },
        "lineage": {
            "git": {"commit": COMMIT, "branch": "main", "remote_url": "https://git.example/ml"},
            "python": "3.12.4",
        },
        "params": {},
        "metrics": {},
        "tags": {},
        "aliases": [],
        "description": "",
        "archived": False,
        "created_at": "2026-01-01T00:00:00Z",
        "created_by": None,
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return VersionOut.model_validate(data)
