"""Talks to a predictor with tritonclient (a V2 client nobody here wrote) and prints JSON.

Run as a separate process: tritonclient's generated protos and ours both define the
`inference.*` messages, and protobuf refuses two definitions of one name in a process.

    python predictor_tritonclient_session.py HOST:PORT MODEL ROWS.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

NUMPY_BY_DATATYPE = {"FP64": np.float64, "INT64": np.int64, "BOOL": np.bool_, "BYTES": np.object_}


def main(address: str, model: str, rows_path: str) -> None:
    rows = json.loads(Path(rows_path).read_text())
    client = triton.InferenceServerClient(url=address)
    metadata = client.get_model_metadata(model, as_json=True)
    inputs = []
    for tensor in metadata["inputs"]:
        values = np.array(
            [row[tensor["name"]] for row in rows], dtype=NUMPY_BY_DATATYPE[tensor["datatype"]]
        )
        if tensor["datatype"] == "BYTES":
            values = np.array([str(value).encode() for value in values], dtype=np.object_)
        infer_input = triton.InferInput(tensor["name"], [len(rows)], tensor["datatype"])
        infer_input.set_data_from_numpy(values)
        inputs.append(infer_input)
    outputs = [triton.InferRequestedOutput(tensor["name"]) for tensor in metadata["outputs"]]
    result = client.infer(model, inputs, outputs=outputs, request_id="triton-1")
    response = result.get_response(as_json=True)
    answer = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready(model),
        "other_model_ready": client.is_model_ready("no_such_model"),
        "server": client.get_server_metadata(as_json=True),
        "metadata": metadata,
        "id": response.get("id"),
        "model_version": response.get("model_version"),
        "outputs": {
            tensor["name"]: [
                value.decode() if isinstance(value, bytes) else value
                for value in result.as_numpy(tensor["name"]).tolist()
            ]
            for tensor in metadata["outputs"]
        },
    }
    try:
        client.infer("no_such_model", inputs)
    except InferenceServerException as error:
        answer["wrong_model_status"] = error.status()
    try:
        client.infer(model, inputs[1:])  # the first column left out
    except InferenceServerException as error:
        answer["missing_column_error"] = [error.status(), error.message()]
    print(json.dumps(answer))


if __name__ == "__main__":
    main(*sys.argv[1:4])
