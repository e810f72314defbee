"""``test_kfpir``'s pipeline written with the KFP SDK's container components, as a team would
write it by hand: what ``kfp.compiler`` writes for it is what funade's compiler is compared
with. (Without ``from __future__ import annotations``: KFP reads the annotations as types.)"""

from kfp import dsl, kubernetes

IMAGE = "registry.example/funade-runtime:1"


def _container() -> dsl.ContainerSpec:
    return dsl.ContainerSpec(image=IMAGE, command=["funade"], args=["step"])


@dsl.container_component
def k_load(rows: int, seed: int, output: dsl.Output[dsl.Artifact]) -> dsl.ContainerSpec:
    return _container()


@dsl.container_component
def k_fit(
    data: dsl.Input[dsl.Artifact], c: float, output: dsl.OutputPath(float)
) -> dsl.ContainerSpec:  # type: ignore[valid-type]
    return _container()


@dsl.container_component
def k_best(scores: list, output: dsl.OutputPath(float)) -> dsl.ContainerSpec:  # type: ignore[type-arg,valid-type]
    return _container()


@dsl.container_component
def k_model(
    data: dsl.Input[dsl.Artifact], c: float, output: dsl.Output[dsl.Artifact]
) -> dsl.ContainerSpec:
    return _container()


@dsl.container_component
def k_pick(
    models: dsl.Input[list[dsl.Artifact]], output: dsl.Output[dsl.Artifact]
) -> dsl.ContainerSpec:
    return _container()


@dsl.container_component
def k_publish(
    chosen: dsl.Input[dsl.Artifact], tag: str, output: dsl.OutputPath(int)
) -> dsl.ContainerSpec:  # type: ignore[valid-type]
    return _container()


@dsl.container_component
def k_announce(version: int, output: dsl.OutputPath(str)) -> dsl.ContainerSpec:  # type: ignore[valid-type]
    return _container()


@dsl.pipeline(name="flow")
def kfp_twin(
    rows: int = 100,
    seed: int = 0,
    cs: list = [0.1, 1.0],  # type: ignore[type-arg]  # noqa: B006
    threshold: float = 0.5,
    tag: str = "candidate",
    loud: bool = False,
) -> None:
    data = k_load(rows=rows, seed=seed).set_display_name("load")
    with dsl.ParallelFor(cs, parallelism=4) as c:
        fitted = k_fit(data=data.outputs["output"], c=c)
        fitted.set_retry(num_retries=2, backoff_duration="5s", backoff_factor=2)
        fitted.set_cpu_limit("2").set_memory_limit("4Gi")
        fitted.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
        kubernetes.use_secret_as_env(
            fitted, secret_name="db-credentials", secret_key_to_env={"password": "DB_PASSWORD"}
        )
        kubernetes.use_secret_as_env(
            fitted, secret_name="api", secret_key_to_env={"token": "TOKEN"}
        )
        kubernetes.set_timeout(fitted, 600)
    top = k_best(scores=dsl.Collected(fitted.outputs["output"]))
    with dsl.ParallelFor([0.5, 2.0], parallelism=4) as c2:
        made = k_model(data=data.outputs["output"], c=c2)
    chosen = k_pick(models=dsl.Collected(made.outputs["output"]))
    with dsl.If(top.outputs["output"] > threshold):
        version = k_publish(chosen=chosen.outputs["output"], tag=tag)
        version.set_caching_options(False)
        with dsl.If(loud == True):  # noqa: E712 - how KFP writes a boolean test
            announced = k_announce(version=version.outputs["output"])
            announced.set_cpu_limit("500m").set_memory_request("512Mi").set_cpu_request("0.5")


@dsl.container_component
def k_score(n: int, output: dsl.OutputPath(float)) -> dsl.ContainerSpec:  # type: ignore[valid-type]
    return _container()


@dsl.container_component
def k_count(n: int, output: dsl.OutputPath(int)) -> dsl.ContainerSpec:  # type: ignore[valid-type]
    return _container()


@dsl.pipeline(name="mixed")
def kfp_mixed(limit: int = 3) -> None:
    scored = k_score(n=limit)
    with dsl.If(scored.outputs["output"] >= limit):
        k_count(n=limit)


@dsl.container_component
def k_scheduled(funade_job: str) -> dsl.ContainerSpec:
    return dsl.ContainerSpec(image=IMAGE, command=["funade"], args=["--job", funade_job])


@dsl.pipeline(name="scheduled")
def scheduled_twin() -> None:
    """A scheduled run's step as the KFP SDK writes it: the job's id given as an argument
    (``dsl.PIPELINE_JOB_ID_PLACEHOLDER``) and the per-schedule Secret mounted as a volume."""
    task = k_scheduled(funade_job=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
    kubernetes.use_secret_as_volume(
        task, secret_name="funade-schedule-0a", mount_path="/var/run/funade/schedule"
    )
