"""The control plane's REST API. ``create_app`` lives in ``funade.api.app``."""
