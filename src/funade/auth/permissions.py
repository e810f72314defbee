"""What a pipeline may ask its run's token for: ``register:<model>``, ``deploy:<model>`` and
``deploy-code`` (``@funade.pipeline(permissions=[...])``). Checked where a pipeline is defined and
again where a run's token is made (``auth.runtokens``)."""

from __future__ import annotations

from funade.auth.principal import CODE_SCOPE, MODEL_ACTIONS
from funade.errors import InvalidInputError
from funade.names import check_model_name

__all__ = ["check_permissions"]


def check_permissions(values: list[str], *, field: str = "permissions") -> list[str]:
    """``values`` as a sorted list of distinct permissions; 422 naming the bad one."""
    out: set[str] = set()
    for value in values:
        if value == CODE_SCOPE:
            out.add(value)
            continue
        action, colon, model = value.partition(":") if isinstance(value, str) else ("", "", "")
        if not colon or action not in MODEL_ACTIONS:
            raise InvalidInputError(
                f"{value!r} is not a pipeline permission.",
                field=field,
                value=value,
                fix="Write 'register:<model>' (register versions and move aliases of a model), "
                f"'deploy:<model>' (deploy it) or '{CODE_SCOPE}'.",
            )
        check_model_name(model, field=field)
        out.add(value)
    return sorted(out)
