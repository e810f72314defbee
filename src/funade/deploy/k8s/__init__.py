"""Kubernetes: the objects that serve a model version (``render``), rendered without a cluster;
``funade manifests`` writes them. The Kubernetes backend (issue 22) applies the same objects."""
