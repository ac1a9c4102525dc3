"""The V2 REST codec as plain functions: bodies in, ModelInferRequests out (and back), and the
400s of bodies no client library would send."""

from __future__ import annotations

import json

import numpy as np
import pytest
from inference import grpc_predict_v2_pb2 as v2

from mlplatform.gateway.status_mapping import ApiError
from mlplatform.gateway.v2_codec import infer_call, infer_result, split_body


def tensor(**fields: object) -> dict[str, object]:
    return {"name": "x", "shape": [2], "datatype": "FP64", "data": [1.5, -0.0], **fields}


def test_json_data_flat_or_nested_becomes_raw_little_endian() -> None:
    call = infer_call(
        {"inputs": [tensor(), tensor(name="k", datatype="INT64", shape=[2, 1], data=[[3], [4]])]},
        b"", "m", "", "rid",
    )  # fmt: skip
    request = call.request
    assert (request.model_name, request.id) == ("m", "rid")
    assert np.frombuffer(request.raw_input_contents[0], "<f8").tolist() == [1.5, -0.0]
    assert np.frombuffer(request.raw_input_contents[1], "<i8").tolist() == [3, 4]
    text = infer_call({"inputs": [tensor(datatype="BYTES", data=["é", ""])]}, b"", "m", "", "r")
    assert text.request.raw_input_contents[0] == b"\x02\x00\x00\x00\xc3\xa9\x00\x00\x00\x00"


def test_binary_inputs_are_cut_from_the_tail_in_input_order() -> None:
    raw = np.array([1.0, 2.0]).tobytes() + np.array([3.0, 4.0]).tobytes()
    sized = {"parameters": {"binary_data_size": 16}}
    document = {"inputs": [tensor(name="a", data=None) | sized, tensor(name="b") | sized]}
    for item in document["inputs"]:
        item.pop("data")
    header = json.dumps(document).encode()
    json_part, tail = split_body(header + raw, str(len(header)))
    request = infer_call(json.loads(json_part), tail, "m", "", "r").request
    assert [len(part) for part in request.raw_input_contents] == [16, 16]
    assert np.frombuffer(request.raw_input_contents[1], "<f8").tolist() == [3.0, 4.0]


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"inputs": [tensor(datatype=["FP64"])]}, "'x'"),
        ({"inputs": [tensor(shape=[2**64])]}, "'x'"),
        ({"inputs": [tensor(data=[1, [2]])]}, "'x'"),
        ({"inputs": [tensor(datatype="BOOL", data=[1, 0])]}, "'x'"),
        ({"inputs": [tensor(datatype="INT32", data=[2**40, 1])]}, "'x'"),
        ({"inputs": [tensor(datatype="BYTES", data=[1, "a"])]}, "'x'"),
        ({"inputs": [tensor()], "id": "\ud800"}, "id"),
        ({"inputs": [tensor()], "outputs": [{"name": "\ud800"}]}, "outputs[0].name"),
        ({"inputs": [tensor()], "outputs": [{"name": "p", "parameters": {"binary_data": 1}}]},
         "binary_data"),
        ({"inputs": {}}, "inputs"),
        ([], "body"),
    ],
)  # fmt: skip
def test_malformed_bodies_are_400_naming_the_field(document: object, named: str) -> None:
    with pytest.raises(ApiError) as refused:
        infer_call(document, b"", "m", "", "r")
    assert refused.value.http_status == 400
    assert named in refused.value.message


def test_binary_data_left_over_or_missing_is_refused() -> None:
    document = {"inputs": [tensor()]}
    with pytest.raises(ApiError, match="belong to no input"):
        infer_call(document, b"\x00" * 8, "m", "", "r")
    with pytest.raises(ApiError, match="Inference-Header-Content-Length"):
        split_body(b"{}", "3")


def test_outputs_are_json_unless_asked_binary() -> None:
    response = v2.ModelInferResponse(model_name="m", model_version="1", id="r")
    response.outputs.add(name="prediction", datatype="INT64", shape=[2])
    response.raw_output_contents.append(np.array([0, 1], "<i8").tobytes())
    probabilities = response.outputs.add(name="probabilities", datatype="FP64", shape=[2, 2])
    probabilities.parameters["classes"].string_param = '["0", "1"]'
    response.raw_output_contents.append(np.array([[0.25, 0.75], [np.nan, 1]]).tobytes())
    document = {"inputs": [tensor()], "outputs": [
        {"name": "prediction"}, {"name": "probabilities", "parameters": {"binary_data": True}},
    ]}  # fmt: skip
    body, length = infer_result(response, infer_call(document, b"", "m", "", "r"))
    assert length is not None
    header = json.loads(body[:length])
    assert header["outputs"][0]["data"] == [0, 1]
    assert header["outputs"][1]["parameters"] == {"classes": '["0", "1"]', "binary_data_size": 32}
    assert np.frombuffer(body[length:], "<f8")[:2].tolist() == [0.25, 0.75]
    as_json, no_length = infer_result(
        response, infer_call({"inputs": [tensor()]}, b"", "m", "", "r")
    )
    assert no_length is None
    assert json.loads(as_json)["outputs"][1]["data"] == [0.25, 0.75, None, 1.0]
