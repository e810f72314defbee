"""The demo `funade up --demo` runs: train a small churn model and register it.

Everything is generated here (no downloads): a synthetic customer table, a scikit-learn
pipeline, and a registration with metrics, params, dataset lineage and the 'production' alias.
"""

from __future__ import annotations

from typing import Any

from funade.cli.output import console
from funade.client import Client
from funade.settings import Settings


def churn_data(rows: int = 2000, seed: int = 0) -> tuple[Any, Any]:
    """A synthetic customer table and who churned (pandas DataFrame and Series)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure_months": rng.integers(1, 72, rows).astype("float64"),
            "monthly_charges": rng.normal(70, 20, rows).round(2),
            "support_calls": rng.poisson(1.5, rows).astype("float64"),
            "contract_months": rng.choice([1.0, 12.0, 24.0], rows),
            "age": rng.integers(18, 80, rows).astype("float64"),
        }
    )
    logit = (
        -0.06 * frame.tenure_months
        + 0.03 * frame.monthly_charges
        + 0.5 * frame.support_calls
        - 0.08 * frame.contract_months
        - 0.5
    )
    churned = pd.Series(rng.random(rows) < 1 / (1 + np.exp(-logit)), name="churned").astype(int)
    return frame, churned


def train_churn(seed: int = 0) -> tuple[Any, Any, dict[str, float], dict[str, Any]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame, churned = churn_data(seed=seed)
    x_train, x_test, y_train, y_test = train_test_split(
        frame, churned, test_size=0.25, random_state=seed
    )
    params = {"C": 1.0, "max_iter": 200}
    model = make_pipeline(StandardScaler(), LogisticRegression(**params))
    model.fit(x_train, y_train)
    metrics = {
        "accuracy": float(accuracy_score(y_test, model.predict(x_test))),
        "auc": float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])),
    }
    return model, x_train, metrics, params


def run_demo(*, url: str, api_key: str, settings: Settings, gateway_url: str | None = None) -> None:
    from funade.sdk import log_model

    console.print("Demo: training a churn model on a synthetic customer table...")
    model, x_train, metrics, params = train_churn()
    with Client(url=url, api_key=api_key, settings=settings) as client:
        version = log_model(
            model,
            "churn",
            sample_input=x_train[:5],
            params=params,
            metrics=metrics,
            datasets={"train": x_train},
            description="Demo: logistic regression on synthetic customers",
            alias="production",
            client=client,
            progress=False,
        )
    console.print(
        f"Demo: registered [bold]churn:{version.version}[/] ({version.flavor}, "
        f"auc {metrics['auc']:.3f}) as churn@production."
    )
    console.print("See it with:")
    console.print(
        f"  curl -H 'Authorization: Bearer {api_key}' "
        f"{url}/api/v1/projects/{version.project}/models/churn/versions/production",
        soft_wrap=True,
    )
    console.print("  funade models show churn@production", soft_wrap=True)
    if gateway_url is not None:
        deploy_demo(url=url, api_key=api_key, settings=settings, gateway_url=gateway_url)


def deploy_demo(*, url: str, api_key: str, settings: Settings, gateway_url: str) -> None:
    """Deploy churn@production behind the gateway and print the curl that predicts with a new
    predict-only key for it (``funade.ready``, as `funade deploy` does)."""
    from funade.cli.deployments import wait_for_rollout
    from funade.errors import NotFoundError
    from funade.ready import ready_call, wait_for_gateway

    with Client(url=url, api_key=api_key, settings=settings) as client:
        try:
            client.get_deployment("churn")
        except NotFoundError:
            client.create_deployment("churn", version="production")
        console.print("Demo: deploying churn (starting a replica, verifying it)...")
        rollout = wait_for_rollout(client, "churn", timeout=180)
        deployment = client.get_deployment("churn")
        if not deployment.traffic:
            console.print(f"[red]Demo: the deployment did not go live:[/] {rollout.reason}")
            return
        call = ready_call(client, deployment, gateway_url=gateway_url)
    wait_for_gateway(call)
    console.print(
        f"Demo: deployed [bold]churn[/] (revision {max(deployment.traffic)}); predict with:"
    )
    for line in call.curls():
        console.print(f"  {line}", soft_wrap=True, markup=False)
