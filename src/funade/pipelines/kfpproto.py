"""kfp-pipeline-spec's protobuf module (``kfp.pipeline_spec.pipeline_spec_pb2``), loaded
without the KFP SDK.

Both packages install into one ``kfp`` folder. With only kfp-pipeline-spec (``funade[kfp]``)
``kfp`` is a namespace package and importing the module costs protobuf's ~0.05 s; with the SDK
installed too (the dev extra, many teams' machines) ``import kfp.pipeline_spec...`` first runs
the SDK's ``kfp/__init__.py``, which imports its client, the kubernetes package and
google-cloud-storage: ~0.6 s of a ~1.7 s ``funade pipeline compile``, for nothing compiling uses.

So when ``kfp`` is not imported yet, the module's file is loaded on its own and registered under
its full name: a later ``from kfp.pipeline_spec import pipeline_spec_pb2`` (the SDK's own
imports, a test's) gets this very module, so protobuf's pool holds its descriptors once. (Only
the attribute path ``kfp.pipeline_spec.pipeline_spec_pb2`` on a ``kfp`` imported afterwards is
not set; neither the SDK nor funade reads it that way.) If ``kfp`` is imported already, or the
file is not a plain file on disk, it is imported as usual.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["NAME", "pipeline_spec_pb2"]

NAME = "kfp.pipeline_spec.pipeline_spec_pb2"
_PARENTS = ("kfp", "kfp.pipeline_spec")


def _file() -> Path | None:
    top = importlib.util.find_spec("kfp")  # finds, does not run, a top-level package
    for folder in (top.submodule_search_locations or []) if top else []:
        path = Path(folder, "pipeline_spec", "pipeline_spec_pb2.py")
        if path.is_file():
            return path
    return None


def pipeline_spec_pb2() -> ModuleType:
    """The module; ImportError (naming the missing module) if it cannot be imported (also
    when ``sys.modules`` blocks ``kfp`` or ``kfp.pipeline_spec`` with None, as Python's
    import does)."""
    blocked = any(name in sys.modules and sys.modules[name] is None for name in _PARENTS)
    loaded = sys.modules.get(NAME)
    if loaded is not None and not blocked:
        return loaded
    path = _file() if "kfp" not in sys.modules and not blocked else None
    spec = importlib.util.spec_from_file_location(NAME, path) if path else None
    if spec is None or spec.loader is None:
        from kfp.pipeline_spec import pipeline_spec_pb2 as imported  # honours blocked parents

        usual: ModuleType = imported
        return usual
    module = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[NAME]
        raise
    return module
