"""Pure ASGI middleware of the control plane, one concern per module."""
