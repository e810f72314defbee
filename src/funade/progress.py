"""Progress bars for long transfers: rich on an interactive terminal, silent otherwise."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


class transfer_progress:
    """A rich progress bar on an interactive terminal (or when asked); silent otherwise."""

    def __init__(self, enabled: bool | None, label: str, total: int) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.label = label
        self.total = total
        self._progress: Any = None

    def __enter__(self) -> Callable[[int, int], None] | None:
        if not self.enabled:
            return None
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            transient=False,
        )
        self._progress.start()
        task = self._progress.add_task(self.label, total=self.total)

        def report(done: int, total: int) -> None:
            self._progress.update(task, completed=done, total=total or self.total)

        return report

    def __exit__(self, *_exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
