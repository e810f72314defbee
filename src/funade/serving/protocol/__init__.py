"""The model server's wire formats as pure functions: no web framework, no I/O.

``v2`` is the Open Inference Protocol v2 over REST with Triton's binary tensor data extension
(what ``tritonclient.http`` and KServe's ``InferenceRESTClient`` speak: requests decoded in
``v2decode``, answers encoded in ``v2encode``); ``v1`` is KServe's v1
(TensorFlow Serving's ``instances``/``predictions``); ``binary`` converts one tensor to and from
the extension's bytes; ``types`` holds the decoded request and response.
"""

from funade.serving.protocol.binary import tensor_from_bytes, tensor_to_bytes
from funade.serving.protocol.types import (
    InferInput,
    InferOutput,
    InferRequest,
    InferResponse,
    RequestedOutput,
)
from funade.serving.protocol.v1 import (
    V1Request,
    decode_v1_request,
    encode_v1_response,
    v1_to_tensors,
)
from funade.serving.protocol.v2 import (
    BINARY_EXTENSION,
    CLASSIFICATION_EXTENSION,
    HEADER_LENGTH,
    JSON_CONTENT_TYPE,
    OCTET_CONTENT_TYPE,
    TensorSpecLike,
    decode_infer_request,
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
    "InferInput",
    "InferOutput",
    "InferRequest",
    "InferResponse",
    "RequestedOutput",
    "TensorSpecLike",
    "V1Request",
    "decode_infer_request",
    "decode_v1_request",
    "encode_infer_response",
    "encode_v1_response",
    "error_body",
    "model_metadata",
    "server_metadata",
    "tensor_from_bytes",
    "tensor_to_bytes",
    "v1_to_tensors",
]
