"""What the API app holds for its lifetime: settings, the store and the artifact store."""

from __future__ import annotations

from dataclasses import dataclass

from funade.artifacts import ArtifactStore
from funade.settings import Settings
from funade.store import Database


@dataclass
class AppState:
    settings: Settings
    db: Database
    artifacts: ArtifactStore
    controller: bool = False
    """Whether a deployment controller runs with this API (``funade up`` starts one)."""
