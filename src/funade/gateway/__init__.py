"""The gateway: the data plane in front of every deployment's replicas.

``table.py`` reads the routing table from the store (kept when the store is away);
``keys.py`` checks API keys (cached); ``limits.py`` holds token buckets; ``http.py`` is the plain
ASGI plumbing (refusals, bodies, headers); ``app.py`` is the app that authorizes, limits, picks a
revision and a replica, and forwards; ``forms.py`` says which requests of each form stack and how;
``merge.py`` merges concurrent ones into one upstream call; ``upstream.py`` is the kept-alive
HTTP/1.1 client to replicas; ``server.py`` runs it.
"""
