"""deploy/k8s renders to manifests that hold together with the platform.

The rendering is kustomize's, for the transformers the overlays use (resources, namespace,
images, replicas): the test refuses a kustomization using anything else, so it never checks
something kustomize would render differently. CI renders the same folders with kustomize
itself and validates them against the Kubernetes and KEDA schemas with kubeconform.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_compose import ROLES, THIRD_PARTY_ENVIRONMENT, known_environment_names

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "namespace", "images", "replicas"}
CLUSTER_SCOPED = {"Namespace"}
Manifest = dict[str, Any]


def render(folder: Path) -> list[Manifest]:
    """The manifests `kustomize build folder` prints (for the supported transformers)."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - SUPPORTED_FIELDS
    assert not unsupported, f"{folder}: {sorted(unsupported)} is not rendered by this test"
    manifests: list[Manifest] = []
    for resource in kustomization.get("resources", []):
        path = (folder / resource).resolve()
        if path.is_dir():
            manifests += render(path)
        else:
            manifests += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for manifest in manifests:
        if "namespace" in kustomization and manifest["kind"] not in CLUSTER_SCOPED:
            manifest["metadata"]["namespace"] = kustomization["namespace"]
        for container in containers(manifest):
            for image in kustomization.get("images", []):
                if container["image"].split(":")[0] == image["name"]:
                    name = image.get("newName", image["name"])
                    container["image"] = f"{name}:{image['newTag']}" if "newTag" in image else name
    for replicas in kustomization.get("replicas", []):
        [target] = [
            m
            for m in manifests
            if m["kind"] in ("Deployment", "StatefulSet")
            and m["metadata"]["name"] == replicas["name"]
        ]
        target["spec"]["replicas"] = replicas["count"]
    return manifests


def containers(manifest: Manifest) -> list[dict[str, Any]]:
    if manifest["kind"] != "Deployment":
        return []
    return manifest["spec"]["template"]["spec"]["containers"]


def find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    [found] = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


@pytest.fixture(scope="module", params=["base", "overlays/local"])
def manifests(request: pytest.FixtureRequest) -> list[Manifest]:
    return render(K8S / request.param)


@pytest.fixture(scope="module")
def local() -> list[Manifest]:
    return render(K8S / "overlays" / "local")


def test_a_deployment_per_role_running_its_command(manifests: list[Manifest]) -> None:
    for role in ROLES:
        [container] = containers(find(manifests, "Deployment", role))
        assert container["args"] == [role]
        assert container["image"].split(":")[0].endswith(f"mlplatform-{role}")
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        pod = find(manifests, "Deployment", role)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True


def test_services_select_their_deployment_and_name_its_ports(manifests: list[Manifest]) -> None:
    for role in ("gateway", "predictor"):
        service = find(manifests, "Service", role)
        deployment = find(manifests, "Deployment", role)
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        [container] = containers(deployment)
        port_names = {port["name"] for port in container["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names


def test_health_probes(manifests: list[Manifest]) -> None:
    [predictor] = containers(find(manifests, "Deployment", "predictor"))
    assert predictor["readinessProbe"]["grpc"] == {"port": 50051}
    assert predictor["livenessProbe"]["tcpSocket"] == {"port": "grpc"}
    [gateway] = containers(find(manifests, "Deployment", "gateway"))
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_config_and_secret_names_are_platform_settings(local: list[Manifest]) -> None:
    known = known_environment_names() | set(THIRD_PARTY_ENVIRONMENT)
    config = find(local, "ConfigMap", "mlplatform-config")
    sources = {"mlplatform-config": set(config["data"])}
    sources |= {
        m["metadata"]["name"]: set(m["stringData"])
        for m in local
        if m["kind"] == "Secret" and m["metadata"]["name"] != "mlplatform-keda"
    }
    for name, names in sources.items():
        unknown = names - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which nothing reads"
    for role in ROLES:
        [container] = containers(find(local, "Deployment", role))
        refs = [next(iter(ref.values()))["name"] for ref in container["envFrom"]]
        assert set(refs) <= set(sources), f"{role} reads a ConfigMap or Secret that is not there"
        assert refs[:2] == ["mlplatform-config", "mlplatform-secrets"]
        environment = set().union(*(sources[ref] for ref in refs))
        unknown = {variable["name"] for variable in container.get("env", [])} - known
        assert not unknown, f"{role} sets {sorted(unknown)}, which nothing reads"
        # Least privilege: only the queue workers reach the broker, each as its own user.
        if role in ("trainer", "inferer"):
            assert refs[2:] == [f"mlplatform-broker-{role}"]
            assert "MLP_BROKER_URL" in environment
        else:
            assert "MLP_BROKER_URL" not in environment, f"{role} never uses the broker"
    assert find(local, "Secret", "mlplatform-secrets")["stringData"]["MLP_STORE_URI"].startswith(
        "mongodb://"
    )


def test_ports_in_the_config_match_the_containers(manifests: list[Manifest]) -> None:
    data = find(manifests, "ConfigMap", "mlplatform-config")["data"]
    [predictor] = containers(find(manifests, "Deployment", "predictor"))
    ports = {port["name"]: port["containerPort"] for port in predictor["ports"]}
    assert ports == {
        "grpc": int(data["MLP_PREDICTOR_PORT"]),
        "metrics": int(data["MLP_PREDICTOR_METRICS_PORT"]),
    }
    [gateway] = containers(find(manifests, "Deployment", "gateway"))
    assert gateway["ports"][0]["containerPort"] == int(data["MLP_GATEWAY_PORT"])
    for role in ("gateway", "trainer", "inferer"):
        [container] = containers(find(manifests, "Deployment", role))
        metrics = {port["name"]: port["containerPort"] for port in container["ports"]}["metrics"]
        assert metrics == int(data[f"MLP_{role.upper()}_METRICS_PORT"]), role
    assert data["MLP_GATEWAY_PREDICTOR"] == f"predictor:{ports['grpc']}"


def test_what_scales_how(manifests: list[Manifest]) -> None:
    hpa = find(manifests, "HorizontalPodAutoscaler", "predictor")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "predictor"
    [predictor] = containers(find(manifests, "Deployment", "predictor"))
    assert "cpu" in predictor["resources"]["requests"], "a CPU target needs a CPU request"
    data = find(manifests, "ConfigMap", "mlplatform-config")["data"]
    queues = {"trainer": data["MLP_PIPELINES_QUEUE"], "inferer": data["MLP_BATCHES_QUEUE"]}
    for role, queue in queues.items():
        scaled = find(manifests, "ScaledObject", role)
        assert scaled["spec"]["scaleTargetRef"]["name"] == role
        [trigger] = scaled["spec"]["triggers"]
        assert trigger["type"] == "rabbitmq"
        assert trigger["metadata"]["queueName"] == queue
        # Unacknowledged messages (jobs in progress) count only through the management API.
        assert trigger["metadata"]["protocol"] == "http"
        auth = find(manifests, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        assert auth["spec"]["secretTargetRef"][0]["parameter"] == "host"


def test_the_local_overlay_is_complete(local: list[Manifest]) -> None:
    assert {m["metadata"].get("namespace") for m in local if m["kind"] != "Namespace"} == {
        "mlplatform"
    }
    for name in ("rabbitmq", "mongo", "mlflow"):
        find(local, "Deployment", name)
        find(local, "Service", name)
    find(local, "Secret", "mlplatform-keda")
    images = {c["image"] for m in local for c in containers(m)}
    for role in (*ROLES, "mlflow"):
        assert f"mlplatform/mlplatform-{role}:latest" in images
    data = find(local, "ConfigMap", "mlplatform-config")["data"]
    assert data["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert find(local, "Deployment", "gateway")["spec"]["replicas"] == 1
