"""The errors funade raises, one small tree, free of any web framework.

    FunadeError
    ├── InvalidInputError            a value is wrong: names the field, the value and the fix
    │   ├── InvalidNameError
    │   ├── UnknownFlavorError
    │   ├── InvalidArtifactError     an uploaded package is malformed (tar, manifest, pickle)
    │   └── DigestMismatchError      bytes received do not hash to the announced digest
    ├── PayloadTooLargeError         a body or artifact is over the configured limit
    ├── NotFoundError                a project, model, version, alias, key or artifact is missing
    ├── ConflictError                the name is taken, or the thing is in use
    ├── AuthenticationError          no credential, or one that is unknown, revoked or expired
    ├── PermissionDeniedError        the credential lacks the scope, or the address is not allowed
    ├── ArtifactCorruptError         stored bytes no longer match their digest (storage fault)
    ├── ModelLoadError               a model package could not be loaded into memory
    └── APIError                     the server answered with an error the client has no class for

Every error carries a machine-readable ``code`` and, where they apply, the ``field`` and ``value``
that were wrong and a ``fix``. ``funade.api.errors`` maps the classes to HTTP status codes; the
client maps the ``code`` of an error response back to the class, so SDK users catch the same types
in-process and over HTTP.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ERROR_FIELD_HEADER",
    "APIError",
    "ArtifactCorruptError",
    "AuthenticationError",
    "ConflictError",
    "DigestMismatchError",
    "FunadeError",
    "InvalidArtifactError",
    "InvalidInputError",
    "InvalidNameError",
    "ModelLoadError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "UnknownFlavorError",
    "error_class_for_code",
]


ERROR_FIELD_HEADER = "Funade-Error-Field"
"""The HTTP header naming the field an API error is about, also where there is no body to
read it from (the answer to a HEAD): a client tells "no such artifact" (``digest``) from "no
such project" (``project``)."""


class FunadeError(Exception):
    """Base of every funade error. ``str(error)`` is a full sentence a person can act on."""

    code: ClassVar[str] = "error"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        value: Any = None,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.field = field
        self.value = value
        self.fix = fix
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.fix and self.fix not in self.message:
            return f"{self.message} {self.fix}"
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of an error response (``{"error": ...}``)."""
        body: dict[str, Any] = {"code": self.code, "message": str(self)}
        if self.field is not None:
            body["field"] = self.field
            body["value"] = _jsonable(self.value)
        if self.fix is not None:
            body["fix"] = self.fix
        return body


class InvalidInputError(FunadeError):
    code = "invalid_input"


class InvalidNameError(InvalidInputError):
    code = "invalid_name"


class UnknownFlavorError(InvalidInputError):
    code = "unknown_flavor"


class InvalidArtifactError(InvalidInputError):
    code = "invalid_artifact"


class DigestMismatchError(InvalidInputError):
    code = "digest_mismatch"


class PayloadTooLargeError(FunadeError):
    code = "payload_too_large"


class NotFoundError(FunadeError):
    code = "not_found"


class ConflictError(FunadeError):
    code = "conflict"


class AuthenticationError(FunadeError):
    code = "unauthenticated"


class PermissionDeniedError(FunadeError):
    code = "permission_denied"


class ArtifactCorruptError(FunadeError):
    code = "artifact_corrupt"


class ModelLoadError(FunadeError):
    code = "model_load_failed"


class APIError(FunadeError):
    """An error response whose code this client does not know (e.g. a newer server)."""

    code = "api_error"

    def __init__(self, message: str, *, status_code: int, code: str = "api_error", **kw: Any):
        self.status_code = status_code
        self.remote_code = code
        super().__init__(message, **kw)


def _all_subclasses(cls: type[FunadeError]) -> list[type[FunadeError]]:
    out: list[type[FunadeError]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def error_class_for_code(code: str) -> type[FunadeError] | None:
    """The error class whose ``code`` is ``code``, or None."""
    candidates: list[type[FunadeError]] = [FunadeError, *_all_subclasses(FunadeError)]
    for cls in candidates:
        if cls.code == code and cls is not APIError:
            return cls
    return None


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."
