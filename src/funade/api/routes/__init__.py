"""The REST routes: each module parses, calls the domain code, and serializes — nothing more."""
