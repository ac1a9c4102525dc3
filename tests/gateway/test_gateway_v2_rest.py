"""KServe V2 over REST on the gateway (a real gateway in front of a real `credit_fraud`
predictor), checked with tritonclient.http, a client nobody here wrote, in its default binary
mode and in JSON mode, then edge cases with plain HTTP. Answers are compared with the model's
own predictions in this process."""

from __future__ import annotations

import json
import struct

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from gateway_data import credit_fraud_features
from gateway_harness import GatewayUnderTest
from tritonclient.utils import InferenceServerException

from mlplatform.common.model_loading import LoadedModel, ModelReference, load_model

MODEL = "credit_fraud"


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return credit_fraud_features().iloc[[0, 1, 2, 40, 77]].reset_index(drop=True)


@pytest.fixture(scope="module")
def model(gateway_registry: str) -> LoadedModel:
    return load_model(ModelReference.parse(MODEL), gateway_registry)


@pytest.fixture(scope="module")
def client(gateway: GatewayUnderTest) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=gateway.url.removeprefix("http://"))


def triton_inputs(rows: pd.DataFrame, binary: bool) -> list[triton.InferInput]:
    inputs = []
    for name in rows.columns:
        infer_input = triton.InferInput(name, [len(rows)], "FP64")
        infer_input.set_data_from_numpy(rows[name].to_numpy(np.float64), binary_data=binary)
        inputs.append(infer_input)
    return inputs


def json_inputs(rows: pd.DataFrame) -> list[dict[str, object]]:
    return [
        {"name": name, "shape": [len(rows)], "datatype": "FP64", "data": rows[name].tolist()}
        for name in rows.columns
    ]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_http_gets_the_models_predictions_and_probabilities(
    client: triton.InferenceServerClient,
    rows: pd.DataFrame,
    model: LoadedModel,
    binary: bool,
) -> None:
    outputs = [
        triton.InferRequestedOutput("prediction", binary_data=binary),
        triton.InferRequestedOutput("probabilities", binary_data=binary),
    ]
    result = client.infer(
        MODEL, triton_inputs(rows, binary), outputs=outputs, request_id="triton-http-1"
    )
    assert result.as_numpy("prediction").tolist() == model.estimator.predict(rows).tolist()
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), model.estimator.predict_proba(rows), rtol=0, atol=0
    )
    response = result.get_response()
    assert (response["id"], response["model_name"], response["model_version"]) == (
        "triton-http-1",
        MODEL,
        "1",
    )
    probabilities = next(out for out in response["outputs"] if out["name"] == "probabilities")
    assert json.loads(probabilities["parameters"]["classes"]) == ["0", "1"]


def test_tritonclient_http_defaults_ask_for_every_output_in_binary(
    client: triton.InferenceServerClient, rows: pd.DataFrame, model: LoadedModel
) -> None:
    result = client.infer(MODEL, triton_inputs(rows.head(1), binary=True))
    assert result.as_numpy("prediction").tolist() == model.estimator.predict(rows.head(1)).tolist()
    assert result.as_numpy("probabilities").shape == (1, 2)


@pytest.mark.parametrize("compression", ["gzip", "deflate"])
def test_tritonclient_http_compressed_requests(
    client: triton.InferenceServerClient,
    rows: pd.DataFrame,
    model: LoadedModel,
    compression: str,
) -> None:
    result = client.infer(
        MODEL, triton_inputs(rows, binary=True), request_compression_algorithm=compression
    )
    assert result.as_numpy("prediction").tolist() == model.estimator.predict(rows).tolist()


def test_tritonclient_http_health_metadata_and_readiness(
    client: triton.InferenceServerClient,
) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, "1")
    assert not client.is_model_ready("no_such_model")
    assert not client.is_model_ready(MODEL, "7")
    server = client.get_server_metadata()
    assert server["name"] == "mlplatform-predictor"
    assert "binary_tensor_data" in server["extensions"]
    metadata = client.get_model_metadata(MODEL)
    assert (metadata["name"], metadata["versions"]) == (MODEL, ["1"])
    assert metadata["inputs"][0] == {"name": "Time", "datatype": "FP64", "shape": [-1]}
    assert [output["name"] for output in metadata["outputs"]] == ["prediction", "probabilities"]
    assert client.get_model_metadata(MODEL, "1") == metadata


def test_tritonclient_http_errors_name_the_column_and_the_unknown_model(
    client: triton.InferenceServerClient, rows: pd.DataFrame
) -> None:
    with pytest.raises(InferenceServerException) as unknown:
        client.infer("no_such_model", triton_inputs(rows, binary=True))
    assert unknown.value.status() == "404"
    assert "no_such_model" in unknown.value.message()
    inputs = triton_inputs(rows.drop(columns="V7"), binary=True)
    with pytest.raises(InferenceServerException) as missing:
        client.infer(MODEL, inputs)
    assert missing.value.status() == "400"
    assert "V7" in missing.value.message()
    text = triton.InferInput("V3", [len(rows)], "BYTES")
    text.set_data_from_numpy(np.array([b"high"] * len(rows), dtype=np.object_))
    others = [tensor for tensor in triton_inputs(rows, binary=True) if tensor.name() != "V3"]
    with pytest.raises(InferenceServerException) as wrong_type:
        client.infer(MODEL, [*others, text])
    assert wrong_type.value.status() == "400"
    assert "V3" in wrong_type.value.message()


def test_json_outputs_nested_data_and_the_version_route(
    gateway: GatewayUnderTest, rows: pd.DataFrame, model: LoadedModel
) -> None:
    inputs = [
        {**tensor, "shape": [len(rows), 1], "data": [[value] for value in tensor["data"]]}
        for tensor in json_inputs(rows)
    ]
    response = gateway.client.post(
        f"/v2/models/{MODEL}/versions/1/infer",
        json={"inputs": inputs, "outputs": [{"name": "prediction"}]},
        headers={"X-Request-ID": "v2-rest-7"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["id"] == "v2-rest-7"  # the request id when the body names none
    [prediction] = body["outputs"]
    assert prediction["name"] == "prediction" and prediction["shape"] == [len(rows)]
    assert prediction["data"] == model.estimator.predict(rows).tolist()


def test_binary_outputs_follow_the_json_header(
    gateway: GatewayUnderTest, rows: pd.DataFrame, model: LoadedModel
) -> None:
    body = {"inputs": json_inputs(rows), "parameters": {"binary_data_output": True}}
    response = gateway.client.post(f"/v2/models/{MODEL}/infer", json=body)
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:length])
    tail = response.content[length:]
    sizes = [output["parameters"]["binary_data_size"] for output in header["outputs"]]
    assert sum(sizes) == len(tail)
    probabilities = np.frombuffer(tail[sizes[0] :], dtype="<f8").reshape(len(rows), 2)
    np.testing.assert_array_equal(probabilities, model.estimator.predict_proba(rows))


def v2_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"]
    assert response.headers["x-request-id"]
    return body["error"]


def test_bad_bodies_get_v2_errors_naming_the_tensor(
    gateway: GatewayUnderTest, rows: pd.DataFrame
) -> None:
    infer = f"/v2/models/{MODEL}/infer"
    strings = json_inputs(rows.head(1))
    strings[2]["data"] = ["a"]
    assert "'V2'" in v2_error(gateway.client.post(infer, json={"inputs": strings}), 400)
    too_big = json_inputs(rows.head(1))
    too_big[0] = {**too_big[0], "datatype": "INT64", "data": [2**64]}
    assert "'Time'" in v2_error(gateway.client.post(infer, json={"inputs": too_big}), 400)
    assert "inputs" in v2_error(gateway.client.post(infer, json={"inputs": []}), 400)
    header = json.dumps(
        {"inputs": [{"name": "Time", "shape": [1], "datatype": "FP64",
                     "parameters": {"binary_data_size": 16}}]}
    ).encode()  # fmt: skip
    short = gateway.client.post(
        infer,
        content=header + struct.pack("<d", 1.0),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert "'Time'" in v2_error(short, 400)
    brotli = gateway.client.post(infer, content=b"{}", headers={"content-encoding": "br"})
    assert "Content-Encoding" in v2_error(brotli, 415)
    broken = gateway.client.post(infer, content=b"{}", headers={"content-encoding": "gzip"})
    assert "gzip" in v2_error(broken, 400)
    plain_text = gateway.client.post(infer, content=b"{}", headers={"content-type": "text/plain"})
    assert "application/json" in v2_error(plain_text, 415)
    assert "no_such_model" in v2_error(gateway.client.get("/v2/models/no_such_model"), 404)
    assert v2_error(gateway.client.get("/v2/models/x/nothing_here"), 404)


def test_health_routes_answer_without_a_model_call(gateway: GatewayUnderTest) -> None:
    assert gateway.client.get("/v2/health/live").json() == {"live": True}
    assert gateway.client.get("/v2/health/ready").json() == {"ready": True}


def test_the_documented_infer_examples_work(gateway: GatewayUnderTest) -> None:
    schema = gateway.client.get("/openapi.json").json()
    operation = schema["paths"]["/v2/models/{name}/infer"]["post"]
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    assert operation["security"] == [{"bearer": []}, {"apiKey": []}]
    for name, example in examples.items():
        response = gateway.client.post(f"/v2/models/{MODEL}/infer", json=example["value"])
        assert response.status_code == 200, f"example {name}: {response.text}"
        assert response.json()["outputs"][0]["shape"][0] == 1
