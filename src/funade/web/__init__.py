"""funade's own HTTP/1.1 serving, shared by the gateway and the model server: the lean front
(``front.py``), its ASGI adapter and lifespan (``asgi.py``), and the direct entry's request and
answer (``call.py``)."""
