"""The Python client of the control plane."""

from funade.client.client import Client
from funade.client.responses import raise_for_error

__all__ = ["Client", "raise_for_error"]
