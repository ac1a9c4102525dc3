"""Scoped API keys from `MLP_API_KEYS_FILE`: a real gateway process in front of a real
predictor, both reading the same keys file.

A key gets into the routes and RPCs its scopes cover (401 without a known key, 403 /
PERMISSION_DENIED with a key that lacks the scope); routes the scope table does not name need
`admin`; health and docs stay open; the file is re-read when it changes; plain `MLP_API_KEYS`
keys keep every scope.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from gateway_data import credit_fraud_features
from gateway_harness import GatewayUnderTest, running_gateway
from grpc_health.v1 import health_pb2, health_pb2_grpc
from inference import grpc_predict_v2_pb2, grpc_predict_v2_pb2_grpc
from predictor_harness import BackgroundLoop, PredictorUnderTest, start_test_predictor, wait_until

from mlplatform.client.predictor_client import PredictorClient, PredictorError
from mlplatform.common.access import ENDPOINT_SCOPES, Scope, scope_for
from mlplatform.common.api_keys import ApiKeys, Verdict, key_digest
from mlplatform.common.keys_file import KeysFileError, parse_keys

PREDICT_KEY = "predict-key-0123"
MONITOR_KEY = "monitor-key-4567"
ADMIN_KEY = "admin-key-89ab"


def _entry(name: str, key: str, *scopes: str) -> dict[str, object]:
    return {"name": name, "sha256": key_digest(key).hex(), "scopes": list(scopes)}


def write_keys(path: Path, *entries: dict[str, object]) -> None:
    """Replaces the file as an editor or `mlp keys add` does: a sibling, then a rename."""
    staging = path.with_name(path.name + ".tmp")
    staging.write_text(yaml.safe_dump({"keys": list(entries)}))
    os.replace(staging, path)


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "api-keys.yaml"
    write_keys(
        path,
        _entry("scorer", PREDICT_KEY, "predict"),
        _entry("dashboard", MONITOR_KEY, "monitor"),
        _entry("operator", ADMIN_KEY, "admin"),
    )
    return path


@pytest.fixture(scope="module")
def scoped_predictor(
    gateway_loop: BackgroundLoop, gateway_registry: str, keys_file: Path
) -> Iterator[PredictorUnderTest]:
    predictor = start_test_predictor(
        gateway_loop,
        "credit_fraud",
        gateway_registry,
        log_predictions=False,
        metrics_port=-1,
        # The predictor looks at the file on every call, the gateway once a second (default).
        api_keys=ApiKeys(keys_file=keys_file, check_interval_s=0),
    )
    yield predictor
    predictor.stop()


@pytest.fixture(scope="module")
def scoped_gateway(
    scoped_predictor: PredictorUnderTest, keys_file: Path, gateway_logs: Path
) -> Iterator[GatewayUnderTest]:
    with running_gateway(
        scoped_predictor.address,
        gateway_logs,
        environment={"MLP_API_KEYS_FILE": str(keys_file)},
    ) as running:
        yield running


def _predict(gateway: GatewayUnderTest, key: str | None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"records": credit_fraud_features().head(1).to_dict(orient="records")}
    return gateway.client.post("/predict", json=body, headers=headers).status_code


# --- the gateway ---------------------------------------------------------------------------


def test_a_key_with_the_predict_scope_predicts(scoped_gateway: GatewayUnderTest) -> None:
    assert _predict(scoped_gateway, PREDICT_KEY) == 200
    headers = {"X-API-Key": PREDICT_KEY}
    assert scoped_gateway.client.get("/models/credit_fraud", headers=headers).status_code == 200


def test_admin_includes_every_scope(scoped_gateway: GatewayUnderTest) -> None:
    assert _predict(scoped_gateway, ADMIN_KEY) == 200


def test_a_key_without_the_scope_is_403(scoped_gateway: GatewayUnderTest) -> None:
    headers = {"Authorization": f"Bearer {MONITOR_KEY}"}
    body = {"records": credit_fraud_features().head(1).to_dict(orient="records")}
    response = scoped_gateway.client.post("/predict", json=body, headers=headers)
    assert response.status_code == 403, response.text
    assert response.json()["status"] == "PERMISSION_DENIED"
    assert "`predict` scope" in response.json()["message"]


@pytest.mark.parametrize("key", [None, "not-a-key"], ids=["no key", "unknown key"])
def test_no_or_an_unknown_key_is_401(scoped_gateway: GatewayUnderTest, key: str | None) -> None:
    assert _predict(scoped_gateway, key) == 401


def test_routes_are_scoped_by_the_table_and_unmapped_ones_need_admin(
    scoped_gateway: GatewayUnderTest,
) -> None:
    """`/monitor` needs `monitor`: a monitor key passes auth and meets the router (404 until a
    monitor page exists), a predict key does not. An unmapped path needs `admin`."""

    def status(path: str, key: str) -> int:
        return scoped_gateway.client.get(path, headers={"X-API-Key": key}).status_code

    assert status("/monitor/credit_fraud", MONITOR_KEY) == 404
    assert status("/monitor/credit_fraud", PREDICT_KEY) == 403
    assert status("/outcomes", PREDICT_KEY) == 403
    assert status("/some/route/added/later", PREDICT_KEY) == 403
    assert status("/some/route/added/later", ADMIN_KEY) == 404
    assert scoped_gateway.client.get("/some/route/added/later").status_code == 401


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/ping", "/docs", "/openapi.json"])
def test_health_and_docs_stay_open(scoped_gateway: GatewayUnderTest, path: str) -> None:
    assert scoped_gateway.client.get(path).status_code == 200


def test_a_changed_file_is_picked_up_without_a_restart(
    scoped_gateway: GatewayUnderTest, scoped_predictor: PredictorUnderTest, keys_file: Path
) -> None:
    original = keys_file.read_text()
    late_key = "late-key-cdef"
    rows = credit_fraud_features().head(1)
    try:
        write_keys(
            keys_file,
            _entry("operator", ADMIN_KEY, "admin"),
            _entry("late", late_key, "predict"),
        )  # the predict key is revoked, a new one added
        wait_until(lambda: _predict(scoped_gateway, late_key) == 200, 10, what="the new key")
        wait_until(lambda: _predict(scoped_gateway, PREDICT_KEY) == 401, 10, what="revocation")
        with PredictorClient(scoped_predictor.address, api_key=late_key) as client:
            assert len(client.predict(rows).predictions) == 1
        keys_file.write_text("keys: [ {name: broken")  # a typo keeps the last good keys
        wait_until(  # the gateway looks at the file when a request comes
            lambda: (
                _predict(scoped_gateway, late_key) == 200
                and "not valid YAML or JSON" in scoped_gateway.log()
            ),
            10,
            what="the gateway to log the broken file and keep the last good keys",
        )
        assert _predict(scoped_gateway, late_key) == 200
        with PredictorClient(scoped_predictor.address, api_key=late_key) as client:
            assert len(client.predict(rows).predictions) == 1  # its file is checked every call
    finally:
        keys_file.write_text(original)
        wait_until(lambda: _predict(scoped_gateway, PREDICT_KEY) == 200, 10, what="restore")


def test_a_bad_keys_file_stops_the_gateway_at_start(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": "x", "sha256": "abc", "scopes": ["all"]}]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLP_")}
    done = subprocess.run(
        [sys.executable, "-m", "mlplatform.cli", "gateway"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "MLP_API_KEYS_FILE": str(keys)},
    )
    assert done.returncode == 2
    assert "keys[0].sha256: expected the key's SHA-256 digest" in done.stderr


def test_plain_keys_keep_every_scope(
    scoped_predictor: PredictorUnderTest, gateway_logs: Path
) -> None:
    with running_gateway(
        scoped_predictor.address, gateway_logs, environment={"MLP_API_KEYS": "plain-key"}
    ) as gateway:
        headers = {"X-API-Key": "plain-key"}
        assert gateway.client.get("/monitor/x", headers=headers).status_code == 404
        assert gateway.client.get("/anything", headers=headers).status_code == 404


# --- the predictor's RPCs ------------------------------------------------------------------


def test_rpcs_are_scoped(scoped_predictor: PredictorUnderTest) -> None:
    rows = credit_fraud_features().head(1)
    with PredictorClient(scoped_predictor.address, api_key=MONITOR_KEY) as client:
        with pytest.raises(PredictorError) as refused:
            client.predict(rows)
        assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    with PredictorClient(scoped_predictor.address, api_key="nope") as client:
        with pytest.raises(PredictorError) as unknown:
            client.model_info()
        assert unknown.value.code == grpc.StatusCode.UNAUTHENTICATED
    v2 = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(scoped_predictor.channel)
    request = grpc_predict_v2_pb2.ModelMetadataRequest(name="credit_fraud")
    metadata = (("x-api-key", PREDICT_KEY),)
    assert v2.ModelMetadata(request, metadata=metadata, timeout=5).name == "credit_fraud"
    with pytest.raises(grpc.RpcError) as v2_refused:
        v2.ModelMetadata(request, metadata=(("x-api-key", MONITOR_KEY),), timeout=5)
    assert v2_refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    health = health_pb2_grpc.HealthStub(scoped_predictor.channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == (
        health_pb2.HealthCheckResponse.SERVING
    )


# --- the table and the file, as plain functions ------------------------------------------------


def test_the_scope_table() -> None:
    assert scope_for("/mlplatform.v1.Predictor/Predict") is Scope.PREDICT
    assert scope_for("/inference.GRPCInferenceService/ModelInfer") is Scope.PREDICT
    assert scope_for("/grpc.health.v1.Health/Watch") is None
    assert scope_for("/mlplatform.v1.Predictor/SomethingNew") is Scope.ADMIN
    assert scope_for("/mlplatform.v1.Predictor/RecordOutcomes") is Scope.OUTCOMES
    assert scope_for("/models/credit_fraud") is Scope.PREDICT
    assert scope_for("/v2/models/credit_fraud/infer") is Scope.PREDICT
    assert scope_for("/v2/health/live") is None
    assert scope_for("/monitor") is Scope.MONITOR
    assert scope_for("/predictions") is Scope.ADMIN  # a prefix of no entry: not /predict
    assert all(entry.startswith("/") for entry in ENDPOINT_SCOPES)


def test_keys_file_errors_name_the_field() -> None:
    good = key_digest("k").hex()
    cases = {
        "keys: {a: 1}": "expected a mapping with a `keys` list",
        "keys: [{name: a, sha256: nothex, scopes: [predict]}]": "keys[0].sha256",
        f"keys: [{{name: a, sha256: {good}, scopes: [predikt]}}]": "keys[0].scopes[0]",
        f"keys: [{{name: '', sha256: {good}, scopes: [predict]}}]": "keys[0].name",
        f"keys: [{{name: a, sha256: {good}, scopes: []}}]": "keys[0].scopes",
        f"keys: [{{name: a, sha256: {good}, scopes: [admin], key: k}}]": "unknown field 'key'",
        f"keys: [{{name: a, sha256: {good}, scopes: [admin]}}, {{name: b, sha256: {good},"
        " scopes: [predict]}]": "same sha256",
    }
    for text, expected in cases.items():
        with pytest.raises(KeysFileError, match=expected.replace("[", r"\[").replace("]", r"\]")):
            parse_keys(text, "keys.yaml")
    assert parse_keys("", "keys.yaml") == ()
    json_entry = parse_keys(f'{{"keys": [{{"name": "a", "sha256": "{good.upper()}",'
                            ' "scopes": ["predict"]}]}', "keys.json")  # fmt: skip
    assert json_entry[0].scopes == frozenset({Scope.PREDICT})


def test_check_outcomes(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    write_keys(path, _entry("scorer", PREDICT_KEY, "predict"))
    keys = ApiKeys(["plain"], path)
    assert keys.check(None, Scope.PREDICT) is Verdict.MISSING
    assert keys.check("nope", Scope.PREDICT) is Verdict.INVALID
    assert keys.check(PREDICT_KEY, Scope.PREDICT) is Verdict.ALLOWED
    assert keys.check(PREDICT_KEY, Scope.MONITOR) is Verdict.FORBIDDEN
    assert keys.check("plain", Scope.ADMIN) is Verdict.ALLOWED
    assert ApiKeys(keys_file=path).enabled and not ApiKeys().enabled
    (tmp_path / "empty.yaml").write_text("")
    assert ApiKeys(keys_file=tmp_path / "empty.yaml").enabled  # a file means auth is on
    with pytest.raises(KeysFileError, match="cannot read"):
        ApiKeys(keys_file=tmp_path / "missing.yaml")
