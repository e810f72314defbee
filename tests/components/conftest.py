"""Pipelines written to files, as tests/pipelines/ writes them."""

from tests.pipelines.conftest import write_pipeline

__all__ = ["write_pipeline"]
