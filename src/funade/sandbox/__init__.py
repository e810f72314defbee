"""Where model code and pipeline steps run: their environment, their files and their user.

Replicas (``funade serve`` processes of a deployment) and pipeline steps run code that came in
through the API (pickles, Python classes, pipeline files). They start with a minimal environment
(an allowlist, never the parent's), a credential of their own, and, when funade runs as root, as
a user of their project's own (``users``), so they cannot read the platform's files or other
projects' processes. See docs/security.md.
"""

from funade.sandbox.env import check_runtime_env, minimal_env

__all__ = ["check_runtime_env", "minimal_env"]
