"""Outcomes named by prediction key through each way in: gRPC RecordOutcomes, the gateway's
POST /outcomes (JSON and CSV) and `mlp outcomes`; reused keys are reported, unknown keys and
misplaced fields refused whole with the field named.

The keyed predictions are written into the predictor's own store directly, so that keys can
be shared between models and reused; keys logged by the predictor's own Predict, V2 ModelInfer
and the gateway are covered in tests/predictor/test_prediction_keys.py, the batch path in
tests/inferer/test_batch_prediction_keys.py. Their model names are this module's own, so the
other monitoring tests' counts are untouched.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pandas as pd
import pytest
from monitoring_model import MonitoredModel
from test_outcomes_bad_input import violations
from typer.testing import CliRunner

from mlplatform.cli.main import app
from mlplatform.common.store import PredictionRecord
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc

KEYED = "churn_keyed"
OTHER = "fraud_keyed"


@pytest.fixture(scope="module")
def keyed(monitored: MonitoredModel) -> MonitoredModel:
    """KEYED predictions with keys k-0..k-5, k-dup twice and k-shared; OTHER has k-shared too."""

    def record(model: str, request: str, row: int, key: str) -> PredictionRecord:
        return PredictionRecord(
            model_name=model,
            model_version="1",
            input_row={"f0": 0.5},
            prediction="stay",
            source="online",
            request_id=request,
            row_index=row,
            prediction_key=key,
        )

    records = [record(KEYED, "req-keyed", row, f"k-{row}") for row in range(6)]
    records += [record(KEYED, "req-keyed-2", 0, "k-dup"), record(KEYED, "req-keyed-2", 1, "k-dup")]
    records += [
        record(KEYED, "req-keyed-3", 0, "k-shared"),
        record(OTHER, "req-other", 0, "k-shared"),
    ]
    monitored.store.append_predictions(records)
    return monitored


def labelled(monitored: MonitoredModel, model: str = KEYED) -> int:
    return monitored.store.count_labelled(model)


def test_grpc_outcomes_by_key_report_reused_keys_and_replacements(keyed: MonitoredModel) -> None:
    stub = predictor_pb2_grpc.PredictorStub(keyed.predictor.channel)
    reply = stub.RecordOutcomes(
        predictor_pb2.RecordOutcomesRequest(
            outcomes=[
                predictor_pb2.Outcome(prediction_key="k-0", label_string="stay"),
                predictor_pb2.Outcome(prediction_key="k-dup", label_string="leave"),
                predictor_pb2.Outcome(prediction_key="k-shared", model=KEYED, label_string="stay"),
            ]
        ),
        timeout=30,
    )
    assert (reply.matched, reply.labelled, reply.replaced) == (3, 4, 0)
    assert list(reply.reused_prediction_keys) == ["k-dup"]
    assert reply.reused_prediction_key_count == 1
    assert labelled(keyed, OTHER) == 0  # k-shared was narrowed to KEYED

    again = stub.RecordOutcomes(
        predictor_pb2.RecordOutcomesRequest(
            outcomes=[predictor_pb2.Outcome(request_id="req-keyed", row=0, label_string="leave")]
        ),
        timeout=30,
    )
    assert (again.matched, again.labelled, again.replaced) == (1, 1, 1)


@pytest.mark.parametrize(
    ("outcome", "field", "words"),
    [
        (
            predictor_pb2.Outcome(prediction_key="k-404", label_string="stay"),
            "prediction_key",
            "1 of 2 outcomes name no logged prediction (prediction_key='k-404'; 1 matched)",
        ),
        (
            predictor_pb2.Outcome(prediction_key="k-1", model="no_such_model", label_string="x"),
            "prediction_key",
            "prediction_key='k-1' model='no_such_model'",
        ),
        (
            predictor_pb2.Outcome(prediction_key="k-1", row=3, label_string="stay"),
            "row",
            "not used with prediction_key",
        ),
        (
            predictor_pb2.Outcome(request_id="req-keyed", row=1, model=KEYED, label_string="x"),
            "model",
            "used with prediction_key only",
        ),
        (predictor_pb2.Outcome(prediction_key="k-1"), "label", "is not a string"),
    ],
)
def test_grpc_bad_outcomes_by_key_name_the_field_and_store_nothing(
    keyed: MonitoredModel, outcome: predictor_pb2.Outcome, field: str, words: str
) -> None:
    before = labelled(keyed)
    valid = predictor_pb2.Outcome(prediction_key="k-2", label_string="stay")
    stub = predictor_pb2_grpc.PredictorStub(keyed.predictor.channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.RecordOutcomes(predictor_pb2.RecordOutcomesRequest(outcomes=[valid, outcome]))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    [(named, description)] = violations(caught.value)
    assert named == field and words in description, description
    assert labelled(keyed) == before


def test_rest_json_outcomes_by_key(keyed: MonitoredModel) -> None:
    reply = keyed.gateway.client.post(
        "/outcomes",
        json={"outcomes": [{"prediction_key": "k-3", "model": KEYED, "label": "leave"}]},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "matched": 1,
        "labelled": 1,
        "replaced": 0,
        "reused_prediction_keys": [],
        "reused_prediction_key_count": 0,
    }


@pytest.mark.parametrize(
    ("outcome", "field"),
    [
        ({"prediction_key": 42, "label": "stay"}, "prediction_key"),
        ({"prediction_key": "k-1", "row": 0, "label": "stay"}, "row"),
        ({"request_id": "req-keyed", "row": 1, "model": KEYED, "label": "stay"}, "model"),
        ({"prediction_key": "k-1", "model": 7, "label": "stay"}, "model"),
        ({"prediction_key": "k-1"}, "label"),
        ({"prediction_key": "k-1", "request_id": "req-keyed", "label": "stay"}, "request_id"),
        ({"prediction_key": "k-404", "label": "stay"}, "prediction_key"),
    ],
)
def test_rest_json_bad_outcomes_by_key_are_400_naming_the_field(
    keyed: MonitoredModel, outcome: dict[str, object], field: str
) -> None:
    before = labelled(keyed)
    reply = keyed.gateway.client.post("/outcomes", json={"outcomes": [outcome]})
    assert reply.status_code == 400, reply.text
    [detail] = reply.json()["details"]
    assert [violation["field"] for violation in detail["fieldViolations"]] == [field]
    assert labelled(keyed) == before


def test_rest_csv_mixes_kinds_of_key(keyed: MonitoredModel) -> None:
    reply = keyed.gateway.client.post(
        "/outcomes",
        content="prediction_key,request_id,row,label\nk-4,,,stay\n,req-keyed,5,leave\n",
        headers={"Content-Type": "text/csv"},
    )
    assert reply.status_code == 200, reply.text
    assert (reply.json()["matched"], reply.json()["labelled"]) == (2, 2)


def test_rest_csv_of_keys_without_a_label_column_is_400(keyed: MonitoredModel) -> None:
    reply = keyed.gateway.client.post(
        "/outcomes", content="prediction_key\nk-4\n", headers={"Content-Type": "text/csv"}
    )
    assert reply.status_code == 400
    assert reply.json()["message"].startswith("label: column missing from the CSV header")


def test_cli_outcomes_by_key_say_what_they_did(keyed: MonitoredModel, tmp_path: Path) -> None:
    path = tmp_path / "outcomes.parquet"
    pd.DataFrame({"prediction_key": ["k-shared", "k-1"], "label": ["stay", "leave"]}).to_parquet(
        path
    )
    result = CliRunner().invoke(app, ["outcomes", str(path), "--store", keyed.store_uri])
    assert result.exit_code == 0, result.output
    assert "matched 2 outcomes to logged predictions: 3 predictions labelled" in result.output
    assert "1 prediction key named several predictions" in result.output
    assert "prediction_key='k-shared'" in result.output
    assert labelled(keyed, OTHER) == 1


def test_cli_refuses_unknown_keys_naming_them(keyed: MonitoredModel, tmp_path: Path) -> None:
    before = labelled(keyed)
    path = tmp_path / "outcomes.csv"
    path.write_text("prediction_key,model,label\nk-1,,stay\n007,,stay\nk-2,fraud_keyed,stay\n")
    result = CliRunner().invoke(app, ["outcomes", str(path), "--store", keyed.store_uri])
    assert result.exit_code == 1
    assert "column 'prediction_key': 2 of 3 outcomes name no logged prediction" in result.output
    assert "prediction_key='007'" in result.output  # read as text: the zeros are kept
    assert "prediction_key='k-2' model='fraud_keyed'" in result.output
    assert labelled(keyed) == before


def test_cli_refuses_a_file_with_a_key_column_but_no_label(
    keyed: MonitoredModel, tmp_path: Path
) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_text("prediction_key\nk-1\n")
    result = CliRunner().invoke(app, ["outcomes", str(path), "--store", keyed.store_uri])
    assert result.exit_code == 1
    assert "column 'label': missing; expected columns request_id,row,label" in result.output


def test_cli_names_a_missing_row_of_a_request_id(keyed: MonitoredModel, tmp_path: Path) -> None:
    """A file mixing kinds of key leaves `row` empty on key rows; a request id row needs it."""
    path = tmp_path / "outcomes.csv"
    path.write_text("prediction_key,request_id,row,label\nk-1,,,stay\n,req-keyed,,stay\n")
    result = CliRunner().invoke(app, ["outcomes", str(path), "--store", keyed.store_uri])
    assert result.exit_code == 1
    assert "column 'row': outcome 1: missing; request_id needs a whole number >= 0" in (
        result.output
    )
