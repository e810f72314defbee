"""Deployments: revisions of a model version running as replicas, reconciled from the store.

``backends/`` runs replicas (``local``: supervised ``funade serve`` subprocesses; containers and
Kubernetes later); ``reconcile.py`` decides, from what should run and what does, what to start
and stop (pure logic) and drives a backend with it.
"""
