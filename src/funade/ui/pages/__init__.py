"""The dashboard's pages, one module per section; each has a ``router``."""

from __future__ import annotations

from types import ModuleType

from funade.ui.pages import admin, auth, deployments, models, overview, runs

PAGES: tuple[ModuleType, ...] = (auth, overview, models, deployments, runs, admin)
