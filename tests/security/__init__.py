"""Regression tests of the trust boundaries (docs/security.md): each is an attack that once
worked, or would, and must not."""
