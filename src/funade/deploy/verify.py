"""Verification: a revision's golden examples and smoke requests replayed against a replica.

Golden examples are recorded at registration (``registry/golden.py``): inputs and the outputs the
model gave. Smoke requests are the user's, in the same form, with optional tolerances. A revision
that answers any of them differently gets no traffic; the differences go to the rollout's status.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from funade.deploy.replicaurl import ReplicaHTTP


def verify(
    client: ReplicaHTTP,
    url: str,
    name: str,
    golden: Sequence[dict[str, Any]],
    smoke: Sequence[dict[str, Any]],
    *,
    token: str = "",
) -> list[str]:
    """The differences found replaying every example against ``url`` (empty: it passed)."""
    from funade.registry.golden import compare_outputs  # numpy: when a revision is verified

    problems: list[str] = []
    cases: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        ("golden example", example, {}) for example in golden
    ]
    cases += [
        ("smoke request", example, {k: example[k] for k in ("rtol", "atol") if k in example})
        for example in smoke
    ]
    counts: dict[str, int] = {}
    for kind, example, tolerance in cases:
        counts[kind] = counts.get(kind, 0) + 1
        label = f"{kind} {counts[kind]}"
        body: dict[str, Any] = {"inputs": example["inputs"]}
        wanted = [o["name"] for o in example.get("outputs", [])]
        if wanted:
            body["outputs"] = [{"name": n} for n in wanted]
        try:
            response = client.post(
                url,
                f"/v2/models/{name}/infer",
                json=body,
                headers={"authorization": f"Bearer {token}"} if token else None,
            )
        except httpx.HTTPError as exc:
            problems.append(f"{label}: the replica did not answer ({exc!r})")
            continue
        if response.status_code != 200:
            problems.append(f"{label}: HTTP {response.status_code}: {response.text[:300]}")
            continue
        try:
            actual = response.json()["outputs"]
        except (ValueError, KeyError, TypeError):
            problems.append(f"{label}: the answer is not an inference response")
            continue
        for difference in compare_outputs(example.get("outputs", []), actual, **tolerance):
            problems.append(f"{label}: {difference}")
    return problems
