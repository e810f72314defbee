"""The `cli` fixture (the real `funade` entry point, in-process) is in tests/conftest.py."""

from tests.conftest import Result

__all__ = ["Result"]
