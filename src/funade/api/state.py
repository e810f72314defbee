"""What the API app holds for its lifetime: settings, the store and the artifact store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from funade.artifacts import ArtifactStore
from funade.pipelines.records import StepNames
from funade.settings import Settings
from funade.store import Database

if TYPE_CHECKING:
    from funade.pipelines.schedules import Launcher


@dataclass
class AppState:
    settings: Settings
    db: Database
    artifacts: ArtifactStore
    controller: bool = False
    """Whether a deployment controller runs with this API (``funade up`` starts one)."""
    launcher: Launcher | None = None
    """Starts runner processes for queued runs (``funade up`` sets it once it is serving)."""
    gateway_port: int | None = None
    """The port the gateway listens on, once ``funade up`` has started it."""
    step_names: StepNames = field(default_factory=StepNames)
    """Recent runs' step names, what their cache writes are checked against."""
