"""The sizes the control plane accepts: what its store's columns hold, and caps on free text.

Checked at the API's edge (``api/schemas.py`` for bodies, ``api/params.py`` for paths and
queries, ``api/strictjson.py`` for any number in a body), so a value past them is a 422 that
names it, never a database error: PostgreSQL refuses an ``integer`` past 32 bits and a
``varchar`` past its length, SQLite an integer past 64 bits.
"""

from __future__ import annotations

INT32_MAX = 2**31 - 1
"""The largest id, version, revision or run number, attempt or count (PostgreSQL ``integer``)."""
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
"""Any integer in a JSON body lies in 64 bits (what SQLite and JSON parsers keep exactly)."""

MAX_DESCRIPTION = 10_000
"""Characters of a project's, model's, version's or deployment's description."""
MAX_TAGS = 256
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 512
MAX_METRICS = 1_000
MAX_METRIC_KEY = 128
MAX_PARAMS = 1_000
MAX_PARAM_KEY = 256
"""Entries of a version's tags, metrics and params, and the characters of their keys/values."""

MAX_NAME = 128
"""Characters of a model, key, pipeline, step or schedule name (names.py checks their form)."""
MAX_PROJECT_NAME = 64
MAX_SHORT = 64
"""Characters of an environment, a time zone, an alias or version reference, a CIDR block."""
MAX_WORD = 16
"""Characters of a state, trigger or misfire policy (each one of a few words)."""
MAX_SOURCE = 1_024
"""Characters of a pipeline's source (``/path/train.py:training``)."""
MAX_DIGEST = 71
"""Characters of a digest, ``sha256:`` and 64 hex digits (also a step's cache key)."""
