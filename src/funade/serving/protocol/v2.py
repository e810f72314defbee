"""The Open Inference Protocol v2 over REST: inference bodies, metadata and errors as bytes.

Follows the OIP REST spec (KServe's "v2", Triton's and MLServer's HTTP API) and Triton's
``binary_tensor_data`` extension, so ``tritonclient.http`` and KServe's ``InferenceRESTClient``
work unmodified. Pure functions: the server passes the body and the
``Inference-Header-Content-Length`` header in and sends what comes out. Requests are decoded in
``v2decode``, answers (inference bodies, metadata, errors) encoded in ``v2encode``; this module
names both and holds the choices below.

Choices where the spec leaves room:

- Tensor ``data`` may be flat or nested (row-major); only the element count must match the
  shape. Values must already be of the datatype's kind: JSON true/false for ``BOOL``, integers in
  range for the integer types, numbers for the float types (``FP16`` included), strings for
  ``BYTES`` (kept as their UTF-8 ``bytes``). Nothing is coerced across kinds (``jsondata``).
- A ``BYTES`` output asked for as JSON that holds bytes which are not UTF-8 is sent as binary
  data instead (with ``binary_data_size``): JSON cannot carry it, and both NVIDIA's and KServe's
  clients read any output that has ``binary_data_size`` from the binary part.
- A response with any binary output is ``application/octet-stream`` with
  ``Inference-Header-Content-Length``, as Triton sends it; otherwise ``application/json``.
- Non-finite floats in JSON outputs are written as ``null`` (JSON has no NaN); ask for binary
  outputs to keep them. In requests, ``NaN``/``Infinity`` literals (which ``tritonclient`` writes)
  are accepted.
"""

from funade.serving.protocol.v2decode import decode_infer_request
from funade.serving.protocol.v2encode import (
    BINARY_EXTENSION,
    CLASSIFICATION_EXTENSION,
    HEADER_LENGTH,
    JSON_CONTENT_TYPE,
    OCTET_CONTENT_TYPE,
    TensorSpecLike,
    encode_infer_response,
    error_body,
    model_metadata,
    server_metadata,
)

__all__ = [
    "BINARY_EXTENSION",
    "CLASSIFICATION_EXTENSION",
    "HEADER_LENGTH",
    "JSON_CONTENT_TYPE",
    "OCTET_CONTENT_TYPE",
    "TensorSpecLike",
    "decode_infer_request",
    "encode_infer_response",
    "error_body",
    "model_metadata",
    "server_metadata",
]
