"""Kubernetes: the objects that serve a model version, and how the backend (issue 22) brings a
namespace to them (``plan``: wanted objects and seen objects in, actions out, no cluster)."""
