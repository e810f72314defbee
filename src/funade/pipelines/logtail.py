"""A running step's live log: the end of its output, as the store keeps it."""

from __future__ import annotations

LOG_TAIL_CHARS = 64 * 1024
"""How much of a running step's output is kept (the end of it): in the store, and in a report
the runner has not sent yet."""


def tail(text: str) -> str:
    """The last ``LOG_TAIL_CHARS`` of ``text``, from the start of a line."""
    if len(text) <= LOG_TAIL_CHARS:
        return text
    cut = text[-LOG_TAIL_CHARS:]
    return cut[cut.find("\n") + 1 :] if "\n" in cut else cut
