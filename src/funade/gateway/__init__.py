"""The gateway: the data plane in front of every deployment's replicas.

``table.py`` reads the routing table from the store (kept when the store is away);
``limits.py`` holds token buckets; ``app.py`` is the ASGI app that authenticates, limits, picks
a revision and a replica, and forwards over a keep-alive pool; ``server.py`` runs it.
"""
