"""The REST routes: each module parses, calls the domain code, and serializes — nothing more.

Every route function that takes a ``project`` checks the caller's scope in it itself
(``principal.require(scope, project)``) before it reads anything, besides the dependency that
authenticates the request: the dashboard's pages and GraphQL call these functions directly, with
no dependency in between (``tests/security/test_dashboard_isolation.py`` calls each one so)."""
