"""The Kubernetes manifests under deploy/k8s, checked offline: every gateway object against the
Kubernetes JSON schemas that `kubernetes-validate` ships (strict: an unknown field fails), the
objects against each other (selectors, names, probes, the spec's 8 cores and 16 GB), the ConfigMap
against the platform's own settings, and the Dagster Helm values and the k8s executor's run config
against dagster-k8s's config schemas with their Kubernetes fragments against the Kubernetes
schemas. Nothing is downloaded."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as k8s

from tests.operations.conftest import REPO

K8S = REPO / "deploy" / "k8s"
GATEWAY = K8S / "gateway"
DAGSTER = K8S / "dagster"
# The oldest Kubernetes release the manifests claim (the preStop `sleep` action is GA in 1.32)
# and the newest the package knows.
VERSIONS = ("1.32.0", k8s.latest_version())
SPEC_CPU, SPEC_MEMORY_GIB = 8, 16
SECRET_KEYS = {  # agent-platform-secrets, as docs/deployment-kubernetes.md creates it
    "AGENT_PLATFORM_POSTGRES_URL": "postgresql://agent:secret@postgres:5432/agent",
    "AGENT_PLATFORM_REDIS_URL": "redis://redis:6379/0",
    "AGENT_PLATFORM_MLFLOW_TRACKING_URI": "postgresql://mlflow:secret@postgres:5432/mlflow",
    "AGENT_PLATFORM_WEAVIATE_URL": "http://weaviate:8080",
    "AGENT_PLATFORM_WEAVIATE_API_KEY": "secret",
    "AGENT_PLATFORM_ENCRYPTION_KMS_TOKEN": "secret",
}


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def gateway_objects() -> dict[str, dict[str, Any]]:
    kustomization = load(GATEWAY / "kustomization.yaml")
    objects = [load(GATEWAY / name) for name in kustomization["resources"]]
    return {o["kind"]: o for o in objects}


def validate(obj: dict[str, Any]) -> None:
    for version in VERSIONS:
        k8s.validate(obj, version, strict=True)


def cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def gib(quantity: str) -> float:
    units = {"Gi": 1.0, "Mi": 1 / 1024}
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(Gi|Mi)", quantity).groups()  # type: ignore[union-attr]
    return float(number) * units[unit]


def pod_with(container: dict[str, Any], pod_spec: dict[str, Any] | None = None) -> dict:
    """A Pod around a Kubernetes fragment of the Dagster config, for the Pod schema to check."""
    spec = {**(pod_spec or {}), "containers": [{"name": "run", "image": "x:1", **container}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"}, "spec": spec}


def job_with(job_spec: dict[str, Any]) -> dict:
    template = {"spec": {**pod_with({})["spec"], "restartPolicy": "Never"}}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "check"},
        "spec": {**job_spec, "template": template},
    }


@pytest.mark.parametrize("name", sorted(p.name for p in GATEWAY.glob("*.yaml")))
def test_each_gateway_manifest_is_valid_kubernetes(name: str) -> None:
    if name == "kustomization.yaml":
        listed = set(load(GATEWAY / name)["resources"])
        assert listed == {p.name for p in GATEWAY.glob("*.yaml")} - {name}
        return
    validate(load(GATEWAY / name))


def test_a_wrong_field_fails_the_schema_check() -> None:
    deployment = gateway_objects()["Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    broken = {**container, "livenessProbe": {**container["livenessProbe"], "periodSecond": 5}}
    deployment["spec"]["template"]["spec"]["containers"] = [broken]
    with pytest.raises(k8s.ValidationError, match="periodSecond"):
        k8s.validate(deployment, VERSIONS[-1], strict=True)


def test_the_gateway_objects_fit_together_and_the_spec_budget() -> None:
    objects = gateway_objects()
    deployment, service = objects["Deployment"], objects["Service"]
    pdb, hpa, config = (
        objects["PodDisruptionBudget"],
        objects["HorizontalPodAutoscaler"],
        objects["ConfigMap"],
    )
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"],
        pdb["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    replicas = deployment["spec"]["replicas"]
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"] <= replicas

    (container,) = pod["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    port = int(config["data"]["AGENT_PLATFORM_SERVING_PORT"])
    assert container["ports"][0]["containerPort"] == port

    limits = container["resources"]["limits"]
    assert container["resources"]["requests"] == limits  # Guaranteed QoS
    most = hpa["spec"]["maxReplicas"]
    assert most * cpu(limits["cpu"]) <= SPEC_CPU
    assert most * gib(limits["memory"]) <= SPEC_MEMORY_GIB
    grace = float(config["data"]["AGENT_PLATFORM_SERVING_GRACEFUL_SHUTDOWN_S"])
    assert pod["spec"]["terminationGracePeriodSeconds"] > grace

    sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
    assert sources == {config["metadata"]["name"], "agent-platform-secrets"}


def test_the_configmap_with_the_secret_makes_valid_production_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agent_platform.runtime.config import RuntimeSettings
    from agent_platform.settings import Settings

    data = gateway_objects()["ConfigMap"]["data"]
    for key in [k for k in os.environ if k.startswith(("AGENT_PLATFORM_", "OTEL_"))]:
        monkeypatch.delenv(key)
    for key, value in {**data, **SECRET_KEYS}.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.profile == "production"
    assert settings.serving.port == 8443 and settings.serving.host == "0.0.0.0"
    assert str(settings.serving.tls_cert_file) == data["AGENT_PLATFORM_SERVING_TLS_CERT_FILE"]
    assert settings.serving.workers == 2 and settings.auth_required
    sampling = RuntimeSettings().telemetry.sampling
    assert (sampling.base_rate, sampling.max_rate) == (0.01, 1.0)
    assert sampling.active("production")


def test_the_dagster_values_use_the_k8s_run_launcher_with_valid_kubernetes_fragments() -> None:
    from dagster import QueuedRunCoordinator
    from dagster_k8s import K8sRunLauncher

    values = load(DAGSTER / "values.yaml")
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    config = launcher["config"]["k8sRunLauncher"]
    # The chart writes these camelCase keys into dagster.yaml's snake_case launcher config.
    known = set(K8sRunLauncher.config_type())
    assert {_snake(key) for key in config} <= known, {_snake(key) for key in config} - known
    run = config["runK8sConfig"]
    validate(pod_with(run["containerConfig"], run["podSpecConfig"]))
    validate(job_with(run["jobSpecConfig"]))

    (location,) = values["dagster-user-deployments"]["deployments"]
    assert location["codeServerArgs"] == ["-m", "agent_platform.definitions"]
    refs = {r["name"] for r in location["envConfigMaps"] + location["envSecrets"]}
    assert refs == {"agent-platform-config", "agent-platform-secrets"}
    assert refs == {r["name"] for r in config["envConfigMaps"] + config["envSecrets"]}
    for part in (location, values["dagsterWebserver"], values["dagsterDaemon"]):
        validate(pod_with({"resources": part["resources"]}))

    queue = values["dagsterDaemon"]["runCoordinator"]
    assert queue["type"] == "QueuedRunCoordinator"
    queued = queue["config"]["queuedRunCoordinator"]
    assert {_snake(key) for key in queued} <= set(QueuedRunCoordinator.config_type())
    assert {"key": "tenant", "value": {"applyLimitPerUniqueValue": True}, "limit": 2} in queued[
        "tagConcurrencyLimits"
    ]

    celery = load(DAGSTER / "values-celery-k8s.yaml")["runLauncher"]
    assert celery["type"] == "CeleryK8sRunLauncher"
    validate(pod_with({"resources": celery["config"]["celeryK8sRunLauncher"]["resources"]}))


def test_the_k8s_executor_run_config_is_valid_for_dagster_and_kubernetes() -> None:
    import dagster as dg
    from dagster_k8s import k8s_job_executor

    @dg.op
    def step() -> int:
        return 1

    @dg.job(executor_def=k8s_job_executor)
    def one_pod_per_step() -> None:
        step()

    run_config = load(DAGSTER / "k8s-executor.yaml")
    assert dg.validate_run_config(one_pod_per_step, run_config)
    with pytest.raises(dg.DagsterInvalidConfigError, match="max_concurent"):
        broken = {"execution": {"config": {"max_concurent": 4}}}
        dg.validate_run_config(one_pod_per_step, broken)
    step_config = run_config["execution"]["config"]["step_k8s_config"]
    validate(pod_with(step_config["container_config"], step_config["pod_spec_config"]))
    validate(job_with(step_config["job_spec_config"]))


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()
