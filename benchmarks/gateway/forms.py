"""The request forms the gateway benchmark sends, each as a user sends it, and how to read the
predictions back out of an answer in that form.

Every form is built for many distinct rows (``rows``), so a run cycles through bodies that all
differ: no response cache or de-duplication can help any server.

- ``v1-instances``, ``v1-inputs``: ``POST /v1/models/<name>:predict`` with rows as
  ``{"instances": [...]}`` or columns as ``{"inputs": [...]}``; the answer is
  ``{"predictions": [...]}`` (funade's v1 answers the first output, ``predict``);
- ``v2-outputs``: Open Inference Protocol v2 JSON asking for ``predict``;
- ``v2-all``: v2 JSON naming no outputs, so ``predict`` and ``predict_proba`` are both computed
  and sent;
- ``v2-binary``: v2 with the binary tensor extension, as ``tritonclient`` sends it by default:
  a JSON header (the input's ``binary_data_size``), ``Inference-Header-Content-Length``, the
  rows as raw little-endian FP64 after it, and ``predict`` asked for as binary data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import orjson

HEADER_LENGTH = "Inference-Header-Content-Length"
Body = tuple[bytes, dict[str, str]]  # the bytes and the headers of their own


@dataclass(frozen=True)
class Form:
    name: str
    label: str
    v1: bool  # POST /v1/models/<name>:predict, else /v2/models/<name>/infer
    outputs: tuple[str, ...]  # the outputs the answer carries

    def path(self, model: str) -> str:
        return f"/v1/models/{model}:predict" if self.v1 else f"/v2/models/{model}/infer"

    def body(self, input_name: str, rows: npt.NDArray[np.float64]) -> Body:
        if self.name == "v1-instances":
            return orjson.dumps({"instances": rows.tolist()}), {}
        if self.name == "v1-inputs":
            return orjson.dumps({"inputs": rows.tolist()}), {}
        tensor: dict[str, object] = {"name": input_name, "datatype": "FP64"}
        tensor["shape"] = list(rows.shape)
        if self.name == "v2-binary":
            raw = np.ascontiguousarray(rows, dtype="<f8").tobytes()
            tensor["parameters"] = {"binary_data_size": len(raw)}
            wanted = [{"name": "predict", "parameters": {"binary_data": True}}]
            header = orjson.dumps({"inputs": [tensor], "outputs": wanted})
            headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(header))}
            return header + raw, headers
        tensor["data"] = rows.ravel().tolist()
        doc: dict[str, object] = {"inputs": [tensor]}
        if self.name == "v2-outputs":
            doc["outputs"] = [{"name": "predict"}]
        return orjson.dumps(doc), {}

    def read(self, content: bytes, headers: Mapping[str, str]) -> tuple[list[int], set[str]]:
        """The ``predict`` values of an answer in this form, and the names of its outputs
        (``ValueError`` if it has none)."""
        if self.v1:
            return [int(v) for v in orjson.loads(content)["predictions"]], {"predict"}
        length = headers.get(HEADER_LENGTH.lower())
        doc = orjson.loads(content if length is None else content[: int(length)])
        found, offset = None, int(length or 0)
        for output in doc["outputs"]:
            size = output.get("parameters", {}).get("binary_data_size")
            if size is not None:
                chunk = content[offset : offset + size]
                offset += size
            if output["name"] == "predict":
                data = np.frombuffer(chunk, "<i8") if size is not None else output["data"]
                found = [int(v) for v in np.asarray(data).ravel()]
        if found is None:
            raise ValueError(f"no predict output in {content[:200]!r}")
        return found, {output["name"] for output in doc["outputs"]}


FORMS = {
    form.name: form
    for form in (
        Form("v1-instances", "v1 `instances`", True, ("predict",)),
        Form("v1-inputs", "v1 `inputs`", True, ("predict",)),
        Form("v2-outputs", "v2 JSON, `outputs` [predict]", False, ("predict",)),
        Form("v2-all", "v2 JSON, no `outputs` (all)", False, ("predict", "predict_proba")),
        Form("v2-binary", "v2 binary tensors", False, ("predict",)),
    )
}


def distinct_rows(count: int, features: int, seed: int = 1) -> npt.NDArray[np.float64]:
    """``count`` rows no two alike (standard normal draws, as the fitted data roughly is)."""
    return np.random.default_rng(seed).normal(size=(count, features))
