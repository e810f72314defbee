"""A backend module whose dependency is not installed (for tests/deploy/test_backends.py)."""

import funade_test_no_such_library  # type: ignore[import-not-found]  # noqa: F401
