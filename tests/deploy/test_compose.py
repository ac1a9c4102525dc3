"""compose.yml, .env.example and the Dockerfile hold together.

No Docker engine runs on this machine, so the stack is not started here; these checks
catch what breaks a `docker compose up` before anyone runs it: settings that no service
reads, ports that clash, dependencies on services that do not exist, commands the `mlp`
entry point does not have, mounted files that are not in the repository.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from pydantic_settings import BaseSettings

from mlplatform.cli.main import app

REPO = Path(__file__).resolve().parents[2]
#: The Dockerfile's runtime targets: one image per role, plus the MLflow tracking server.
ROLES = ("gateway", "predictor", "trainer", "inferer")
IMAGE_TARGETS = (*ROLES, "mlflow")
#: Names read by third-party code inside our image, not by our settings classes.
THIRD_PARTY_ENVIRONMENT = {
    "MLFLOW_TRACKING_URI": "MLflow's client (and our settings alias)",
    "MLFLOW_S3_ENDPOINT_URL": "MLflow's S3 artifact store (MinIO)",
    "AWS_ACCESS_KEY_ID": "boto3, for MLflow's S3 artifact store",
    "AWS_SECRET_ACCESS_KEY": "boto3, for MLflow's S3 artifact store",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "compose.yml").read_text())


def settings_classes() -> list[type[BaseSettings]]:
    from mlplatform.common.metrics_endpoint import InfererMetricsSettings, TrainerMetricsSettings
    from mlplatform.common.settings import Settings
    from mlplatform.gateway.settings import GatewaySettings
    from mlplatform.predictor.settings import PredictorSettings

    workers = [TrainerMetricsSettings, InfererMetricsSettings]
    return [Settings, PredictorSettings, GatewaySettings, *workers]


def known_environment_names() -> set[str]:
    """Every variable a platform settings class reads."""
    from mlplatform.client import messaging

    names = {"MLP_API_KEYS", "MLP_API_KEYS_FILE"}
    names |= {messaging.BROKER_TLS_CA_ENV, messaging.BROKER_TLS_CERT_ENV}
    names.add(messaging.BROKER_TLS_KEY_ENV)
    for settings_class in settings_classes():
        prefix = settings_class.model_config.get("env_prefix", "")
        for field_name, field in settings_class.model_fields.items():
            names.add(f"{prefix}{field_name}".upper())
            alias = field.validation_alias
            choices = getattr(alias, "choices", [alias] if isinstance(alias, str) else [])
            names.update(str(choice).upper() for choice in choices)
    return names


def platform_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services built from this repository's Dockerfile."""
    return {name: service for name, service in compose["services"].items() if "build" in service}


def dockerfile_stages() -> dict[str, str]:
    """Each `FROM ... AS name` stage of the Dockerfile and its instructions."""
    text = (REPO / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]
    return {
        re.match(r"\S+ AS (\S+)", stage).group(1): stage  # type: ignore[union-attr]
        for stage in stages
    }


def test_expected_services_are_there(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {
        "rabbitmq", "mongo", "postgres", "minio", "mlflow",
        "trainer", "inferer", "predictor", "gateway", "envoy",
    }  # fmt: skip
    assert compose["services"]["trainer"]["deploy"]["replicas"] == 2
    assert compose["services"]["inferer"]["deploy"]["replicas"] == 2


def test_platform_services_only_set_settings_that_exist(compose: dict[str, Any]) -> None:
    known = known_environment_names() | set(THIRD_PARTY_ENVIRONMENT)
    for name, service in platform_services(compose).items():
        unknown = set(service.get("environment", {})) - known
        assert not unknown, f"service {name} sets {sorted(unknown)}, which nothing reads"


def test_platform_commands_exist(compose: dict[str, Any]) -> None:
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    for name, service in platform_services(compose).items():
        if service["build"]["target"] == "mlflow":  # the image's entry point is `mlflow`
            assert service["command"][0] == "server"
            continue
        assert service["command"][0] in commands, (
            f"service {name}: no `mlp {service['command'][0]}`"
        )


def test_dependencies_name_existing_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"


def test_host_ports_do_not_clash(compose: dict[str, Any]) -> None:
    seen: dict[str, str] = {}
    for name, service in compose["services"].items():
        for mapping in service.get("ports", []):
            host_port = str(mapping).split(":")[0]
            assert host_port not in seen, f"port {host_port}: {seen.get(host_port)} and {name}"
            seen[host_port] = name


def test_every_variable_is_in_env_example(compose: dict[str, Any]) -> None:
    used = set(re.findall(r"\$\{(\w+)(?::-[^}]*)?\}", (REPO / "compose.yml").read_text()))
    example = {
        line.split("=", 1)[0]
        for line in (REPO / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert used == example, f"missing from .env.example: {used - example}; unused: {example - used}"


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts {source}, which is not here"


def test_broker_allows_long_trainings() -> None:
    """The trainer acks after training: the broker's consumer timeout must outlast it."""
    config = (REPO / "deploy" / "rabbitmq" / "10-mlplatform.conf").read_text()
    [timeout_ms] = re.findall(r"^consumer_timeout\s*=\s*(\d+)", config, re.MULTILINE)
    assert int(timeout_ms) >= 6 * 3600 * 1000


def test_envoy_reaches_the_predictor_service(compose: dict[str, Any]) -> None:
    envoy = yaml.safe_load((REPO / "gateway" / "envoy" / "envoy.yaml").read_text())
    addresses = re.findall(r"address: (\S+)", yaml.safe_dump(envoy))
    assert "predictor" in addresses, "envoy's cluster must point at the compose service"


def test_dockerfile_installs_the_pinned_platform() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11" in dockerfile
    for folder in ("clients/python", "services", "gateway"):
        assert f"COPY {folder} {folder}" in dockerfile
    installs = re.findall(r"pip install[^\n]*", dockerfile)
    assert installs
    assert all("-c constraints.txt" in line or "--no-deps" in line for line in installs)


def test_no_service_uses_guest_and_each_role_has_its_broker_user(
    compose: dict[str, Any],
) -> None:
    """Least privilege: nobody connects as guest (nor as the administrator); the trainers and
    inferers connect as the users the definitions file gives their permissions to; services
    that never touch the broker get no broker URL."""
    assert "guest" not in (REPO / "compose.yml").read_text()
    definitions = json.loads((REPO / "deploy" / "rabbitmq" / "definitions.json").read_text())
    users = {user["name"] for user in definitions["users"]}
    assert "guest" not in users
    assert {permission["user"] for permission in definitions["permissions"]} == users
    expected = {"trainer": "mlp-trainer", "inferer": "mlp-inferer"}
    for name, service in platform_services(compose).items():
        url = service.get("environment", {}).get("MLP_BROKER_URL")
        if name not in expected:
            assert url is None, f"{name} never uses the broker but gets MLP_BROKER_URL"
            continue
        assert url is not None, f"{name} has no MLP_BROKER_URL"
        assert url.startswith(f"amqp://{expected[name]}:"), f"{name} connects as {url}"
        assert expected[name] in users


def test_broker_passwords_come_from_the_environment(compose: dict[str, Any]) -> None:
    """definitions.json holds placeholders, never passwords; the setup step fills each in
    from a variable compose passes it."""
    text = (REPO / "deploy" / "rabbitmq" / "definitions.json").read_text()
    placeholders = set(re.findall(r"\$\{(\w+)\}", text))
    definitions = json.loads(text)
    assert {user["password"] for user in definitions["users"]} == {
        f"${{{name}}}" for name in placeholders
    }
    assert all("password_hash" not in user for user in definitions["users"])
    script = (REPO / "deploy" / "rabbitmq" / "apply-definitions.sh").read_text()
    setup = compose["services"]["rabbitmq-setup"]
    for name in placeholders:
        assert f"s/\\${{{name}}}/${name}/" in script, f"the setup script does not fill {name}"
        assert name in setup["environment"], f"rabbitmq-setup does not get {name}"
    for role in ("trainer", "inferer"):
        dependencies = compose["services"][role]["depends_on"]
        assert dependencies["rabbitmq-setup"]["condition"] == "service_completed_successfully"


def test_the_tls_override_sets_settings_that_exist_and_mounts_what_is_here(
    compose: dict[str, Any],
) -> None:
    override = yaml.safe_load((REPO / "deploy" / "tls" / "compose.tls.yml").read_text())
    known = known_environment_names()
    for name, service in override["services"].items():
        assert name in compose["services"], f"the TLS override names unknown service {name}"
        unknown = set(service.get("environment", {})) - known
        assert not unknown, f"the TLS override sets {sorted(unknown)} on {name}: nothing reads it"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source != "./deploy/tls/certs":  # made by deploy/tls/make-dev-certs.sh
                assert (REPO / source).exists(), f"{name} mounts {source}, which is not here"
    for role in ("trainer", "inferer"):
        url = override["services"][role]["environment"]["MLP_BROKER_URL"]
        assert url.startswith(f"amqps://mlp-{role}:"), url
    variables = re.compile(r"\$\{(\w+)\}")
    used = set(variables.findall((REPO / "deploy" / "tls" / "compose.tls.yml").read_text()))
    assert used <= set(variables.findall((REPO / "compose.yml").read_text()))


def test_every_role_has_a_slim_non_root_image_with_a_health_check() -> None:
    stages = dockerfile_stages()
    for target in IMAGE_TARGETS:
        stage = stages[target]
        assert "COPY --from=build-" in stage, f"{target}: copies a built virtualenv (multi-stage)"
        assert "\nUSER mlp\n" in stage, f"{target}: runs as the unprivileged user"
        assert "\nHEALTHCHECK " in stage, f"{target}: has a health check"
        assert "pip install" not in stage, f"{target}: installs nothing in the runtime stage"
    for role in ROLES:
        assert f'ENTRYPOINT ["mlp"]\nCMD ["{role}"]' in stages[role]


def test_the_gateway_image_carries_no_ml_stack() -> None:
    stages = dockerfile_stages()
    assert "COPY --from=build-gateway /opt/venv /opt/venv" in stages["gateway"]
    build = stages["build-gateway"]
    assert "-r deploy/images/gateway-requirements.txt" in build
    assert "pip install --no-deps ./clients/python ." in build
    listed = (REPO / "deploy/images/gateway-requirements.txt").read_text().lower()
    for ml_package in ("pycaret", "mlflow", "scikit-learn", "lightgbm", "scipy"):
        assert ml_package not in listed


#: Services that run another role's image: the monitoring exporter needs the ML stack with the
#: monitor extra, which the inferer's image has.
SHARED_IMAGES = {"monitor-exporter": "inferer"}


def test_compose_runs_each_role_from_its_own_image(compose: dict[str, Any]) -> None:
    services = platform_services(compose)
    assert set(services) == {*ROLES, "mlflow", *SHARED_IMAGES}
    for name, service in services.items():
        target = SHARED_IMAGES.get(name, name)
        assert service["build"] == {"context": ".", "target": target}
        assert service["image"].endswith(f"/mlplatform-{target}:${{MLP_IMAGE_TAG:-latest}}")


def test_compose_runs_the_store_on_mongodb(compose: dict[str, Any]) -> None:
    for role in ROLES:
        uri = compose["services"][role]["environment"]["MLP_STORE_URI"]
        assert uri.startswith("mongodb://") and "@mongo:27017/" in uri
    dockerfile = (REPO / "Dockerfile").read_text()
    ml_extras = re.search(r'clients/python "\.\[([a-z,]+)\]"', dockerfile)
    assert ml_extras is not None, "the ML images install the platform with extras"
    assert "mongo" in ml_extras.group(1).split(","), "the ML images install the MongoDB driver"
