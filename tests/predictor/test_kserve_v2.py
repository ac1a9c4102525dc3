"""The KServe V2 protocol on the predictor's port.

Checked with tritonclient (a client nobody here wrote), run in a subprocess because its protos
and ours both define `inference.*` in protobuf's one-per-process pool; then edge cases with our
generated stubs (typed `contents`, unknown outputs, wrong model or version).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest
from inference import grpc_predict_v2_pb2 as v2
from inference import grpc_predict_v2_pb2_grpc as v2_grpc
from predictor_harness import BackgroundLoop, PredictorUnderTest, start_test_predictor
from predictor_registry import Registry

from mlplatform.common.model_loading import ModelReference, load_model

SESSION_SCRIPT = Path(__file__).with_name("predictor_tritonclient_session.py")
# find_spec, not import: importing tritonclient here would clash with our `inference` protos.
needs_tritonclient = pytest.mark.skipif(
    importlib.util.find_spec("tritonclient") is None,
    reason="tritonclient is not installed (dev extra: tritonclient==2.73.0)",
)


def tritonclient_session(address: str, model: str, rows: pd.DataFrame, tmp_path: Path) -> dict:
    rows_path = tmp_path / f"{model}_rows.json"
    rows_path.write_text(rows.to_json(orient="records"))
    completed = subprocess.run(
        [sys.executable, str(SESSION_SCRIPT), address, model, str(rows_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


@pytest.fixture(scope="module")
def pycaret_v2_predictor(
    background_loop: BackgroundLoop, registry: Registry
) -> Iterator[PredictorUnderTest]:
    predictor = start_test_predictor(
        background_loop, "pycaret_lr", registry.tracking_uri, log_predictions=False
    )
    yield predictor
    predictor.stop()


@needs_tritonclient
def test_tritonclient_reads_metadata_and_infers_with_probabilities(
    cancer_predictor: PredictorUnderTest, registry: Registry, tmp_path: Path
) -> None:
    rows = registry.cancer_features.iloc[100:104].reset_index(drop=True)
    answer = tritonclient_session(cancer_predictor.address, "cancer_rf", rows, tmp_path)
    assert answer["live"] and answer["ready"] and answer["model_ready"]
    assert not answer["other_model_ready"]
    assert answer["server"]["name"] == "mlplatform-predictor"
    metadata = answer["metadata"]
    assert metadata["name"] == "cancer_rf" and metadata["versions"] == ["1"]
    assert metadata["inputs"][0] == {"name": "mean_radius", "datatype": "FP64", "shape": ["-1"]}
    assert [output["name"] for output in metadata["outputs"]] == ["prediction", "probabilities"]
    model = load_model(ModelReference.parse("cancer_rf"), registry.tracking_uri)
    assert answer["outputs"]["prediction"] == model.estimator.predict(rows).tolist()
    # ONNX Runtime serves cancer_rf: probabilities within the compile check's tolerance.
    np.testing.assert_allclose(
        answer["outputs"]["probabilities"], model.estimator.predict_proba(rows), rtol=0, atol=1e-6
    )
    assert (answer["id"], answer["model_version"]) == ("triton-1", "1")
    assert answer["wrong_model_status"] == "StatusCode.NOT_FOUND"
    status, message = answer["missing_column_error"]
    assert status == "StatusCode.INVALID_ARGUMENT" and "'mean_radius'" in message


@needs_tritonclient
def test_tritonclient_sends_text_and_integer_columns_to_a_pycaret_pipeline(
    pycaret_v2_predictor: PredictorUnderTest, registry: Registry, tmp_path: Path
) -> None:
    rows = registry.pycaret_features.iloc[:5].dropna().reset_index(drop=True)
    rows["visits"] = rows["visits"].astype("int64")
    answer = tritonclient_session(pycaret_v2_predictor.address, "pycaret_lr", rows, tmp_path)
    datatypes = {tensor["name"]: tensor["datatype"] for tensor in answer["metadata"]["inputs"]}
    assert (datatypes["visits"], datatypes["segment"]) == ("INT64", "BYTES")
    model = load_model(ModelReference.parse("pycaret_lr"), registry.tracking_uri)
    assert answer["outputs"]["prediction"] == list(model.estimator.predict(rows))
    assert len(answer["outputs"]["probabilities"][0]) == 2


def typed_request(model_name: str, rows: pd.DataFrame, **fields: object) -> v2.ModelInferRequest:
    request = v2.ModelInferRequest(model_name=model_name, **fields)
    for name in rows.columns:
        tensor = request.inputs.add(name=name, datatype="FP64", shape=[len(rows)])
        tensor.contents.fp64_contents.extend(rows[name].tolist())
    return request


def test_typed_contents_and_requested_outputs(
    cancer_predictor: PredictorUnderTest, registry: Registry
) -> None:
    stub = v2_grpc.GRPCInferenceServiceStub(cancer_predictor.channel)
    rows = registry.cancer_features.head(2)
    request = typed_request("cancer_rf", rows)
    request.outputs.add(name="prediction")
    response = stub.ModelInfer(request, timeout=10)
    assert [output.name for output in response.outputs] == ["prediction"]
    predicted = np.frombuffer(response.raw_output_contents[0], dtype="<i8")
    model = load_model(ModelReference.parse("cancer_rf"), registry.tracking_uri)
    assert predicted.tolist() == model.estimator.predict(rows).tolist()
    assert len(response.id) == 32  # generated


@pytest.mark.parametrize(
    ("fields", "code", "text"),
    [
        ({"outputs": [{"name": "logits"}]}, grpc.StatusCode.INVALID_ARGUMENT, "'logits'"),
        ({"model_version": "7"}, grpc.StatusCode.NOT_FOUND, "version 7"),
    ],
)
def test_unknown_outputs_and_versions_are_refused(
    cancer_predictor: PredictorUnderTest,
    registry: Registry,
    fields: dict,
    code: grpc.StatusCode,
    text: str,
) -> None:
    stub = v2_grpc.GRPCInferenceServiceStub(cancer_predictor.channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(typed_request("cancer_rf", registry.cancer_features.head(1), **fields))
    assert caught.value.code() is code
    assert text in caught.value.details()


def test_a_tensor_of_the_wrong_shape_is_an_invalid_argument(
    cancer_predictor: PredictorUnderTest, registry: Registry
) -> None:
    stub = v2_grpc.GRPCInferenceServiceStub(cancer_predictor.channel)
    request = typed_request("cancer_rf", registry.cancer_features.head(2))
    request.inputs[0].shape[:] = [1, 2]
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request, timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "column 'mean_radius': shape [1, 2]" in caught.value.details()
