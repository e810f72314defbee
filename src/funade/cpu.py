"""How Linux schedules funade's servers (the ``cpu_scheduling`` setting).

``batch`` puts the calling thread under SCHED_BATCH: a woken task of that policy does not
preempt the one running on its core. Where the gateway and a replica share a core, a request
written to the replica then no longer switches the core to it at once, half-way through the
gateway's turn: the gateway reads what else has arrived first (its merged calls grow), and the
replica then finds several requests waiting (its batches grow). A core with nothing else to run
still runs the woken task at once, so a lone request waits for nothing. ``normal`` is Linux's
default (SCHED_OTHER).

The policy is per thread and inherited by the threads and processes started after it is set, so
each server sets it first thing: ``funade up`` for itself, its gateway and its local replicas
(which are also told the setting, and set it again themselves); ``funade gateway`` and ``funade
serve`` for themselves. Only SCHED_OTHER and SCHED_BATCH are switched between (neither needs a
privilege); a policy set from outside (real-time, idle) is left as it is.
"""

from __future__ import annotations

import logging
import os
from typing import Literal

log = logging.getLogger("funade")

Policy = Literal["batch", "normal"]


def apply_cpu_scheduling(policy: Policy) -> str:
    """Put the calling thread (and what it starts from now on) under ``policy``; what was done,
    in words (for a log line or a test)."""
    if not hasattr(os, "sched_setscheduler"):  # not Linux
        return "not supported here"
    current = os.sched_getscheduler(0)
    if current not in (os.SCHED_OTHER, os.SCHED_BATCH):
        return "left alone (a policy set from outside)"
    wanted = os.SCHED_BATCH if policy == "batch" else os.SCHED_OTHER
    if current == wanted:
        return policy
    try:
        os.sched_setscheduler(0, wanted, os.sched_param(0))
    except OSError as exc:  # a seccomp profile, say: serve all the same
        log.warning("cpu_scheduling %r not applied: %s", policy, exc)
        return f"not applied: {exc}"
    return policy
