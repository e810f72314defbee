"""Kubernetes: the objects that serve a model version (``render``, rendered without a cluster;
``funade manifests`` writes them), and how the backend (issue 22) brings a namespace to them
(``plan``: wanted objects and seen objects in, actions out, no cluster)."""
