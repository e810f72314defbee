"""What a schedule's steps get beyond a run's (``funade.pipelines.scheduletoken``): an input
holding the scheduled job's name at run time, passed to ``funade pipeline step`` as ``--job``,
and on Kubeflow the Secret of the schedule's token mounted as a volume, as
``kfp.kubernetes.use_secret_as_volume`` writes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from funade.pipelines.kfpir.ir import refuse
from funade.pipelines.spec import NodeSpec

__all__ = ["ScheduleInputs"]


@dataclass(frozen=True)
class ScheduleInputs:
    """``job_input``: the input's (name, placeholder), or None for a run's steps;
    ``secret_volume``: the (Secret, mount path), or None."""

    job_input: tuple[str, str] | None = None
    secret_volume: tuple[str, str] | None = None

    def add_job_input(
        self,
        node: NodeSpec,
        where: str,
        parameters: dict[str, Any],
        in_params: dict[str, Any],
    ) -> None:
        """Give the step's task and component the job's input (none for a run's steps)."""
        if self.job_input is None:
            return
        job_name, placeholder = self.job_input
        if job_name in node.inputs:
            raise refuse(
                where,
                f"its input {job_name!r} has the name of the input that carries a "
                "scheduled job's name.",
                "Rename the step's input.",
                value=job_name,
            )
        parameters[job_name] = {"runtimeValue": {"constant": placeholder}}
        in_params[job_name] = {"parameterType": "STRING"}

    def args(self) -> list[str]:
        """The step command's arguments that pass the job's name on."""
        if self.job_input is None:
            return []
        return ["--job", f"{{{{$.inputs.parameters['{self.job_input[0]}']}}}}"]

    def volumes(self) -> list[dict[str, Any]]:
        """The Kubernetes platform spec's ``secretAsVolume`` entries."""
        if self.secret_volume is None:
            return []
        secret, mount = self.secret_volume
        return [
            {
                "mountPath": mount,
                "optional": False,
                "secretName": secret,
                "secretNameParameter": {"runtimeValue": {"constant": secret}},
            }
        ]
