"""The cyclic garbage collector around a model server's start.

A loaded scikit-learn model brings a quarter of a million objects that the collector tracks and
that live as long as the process. Two costs follow, both paid here once:

- while they are imported and loaded, the collector's automatic passes over the growing heap
  find next to nothing and take a tenth of the cold start (measured on the serving benchmark's
  LogisticRegression: 0.1-0.15 s of 1.4 s): ``hold_collections`` turns it off from the start
  of ``funade serve`` (reference counting still frees everything that is not in a cycle);
- once serving, each full collection would walk them all, 170-190 ms during which every request
  in flight waits (the benchmark's p99): ``freeze_what_is_loaded`` moves everything alive out of
  its sight when the model is loaded, and turns collections back on; what requests leave
  behind is collected as usual.

There is no full collection before freezing: it would take another 0.1 s of the cold start to
free the few cycles the start left (a few thousand objects, kept).
"""

from __future__ import annotations

import gc


def hold_collections() -> None:
    """No cyclic collections until the model is loaded (``freeze_what_is_loaded``) or failed
    to load (``resume_collections``)."""
    gc.disable()


def resume_collections() -> None:
    gc.enable()


def freeze_what_is_loaded() -> None:
    """Everything alive now out of the collector's sight for good, and collections on again."""
    gc.freeze()
    gc.enable()


def release_what_is_loaded() -> None:
    """The server stops but the process may live on (tests, an embedding app): collect it all
    again."""
    gc.unfreeze()
