"""Outcomes that cannot be stored are refused whole, with the field named, by every way in:
gRPC RecordOutcomes (INVALID_ARGUMENT with a BadRequest detail), the gateway's POST /outcomes
(400) and `mlp outcomes` (exit code 1)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pandas as pd
import pytest
from google.rpc import error_details_pb2, status_pb2
from monitoring_model import MODEL, MonitoredModel, draw_rows
from predictor_harness import wait_until
from typer.testing import CliRunner

from mlplatform.cli.main import app
from mlplatform.client.frames import dataframe_to_frame
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc

REQUEST = "req-bad-input"


@pytest.fixture(scope="module")
def logged(monitored: MonitoredModel) -> MonitoredModel:
    """Five logged predictions under REQUEST."""
    stub = predictor_pb2_grpc.PredictorStub(monitored.predictor.channel)
    stub.Predict(
        predictor_pb2.PredictRequest(
            inputs=dataframe_to_frame(draw_rows(5, 3)), request_id=REQUEST
        ),
        timeout=30,
    )
    wait_until(
        lambda: monitored.store.count_predictions(request_id=REQUEST) == 5,
        what="the predictions to be logged",
    )
    return monitored


def labelled_count(monitored: MonitoredModel) -> int:
    return monitored.store.count_labelled(MODEL)


def violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    trailer = dict(error.trailing_metadata())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(trailer)
    bad_request = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad_request)
    return [(item.field, item.description) for item in bad_request.field_violations]


def test_grpc_unknown_keys_are_named_and_nothing_is_stored(logged: MonitoredModel) -> None:
    before = labelled_count(logged)
    stub = predictor_pb2_grpc.PredictorStub(logged.predictor.channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.RecordOutcomes(
            predictor_pb2.RecordOutcomesRequest(
                outcomes=[
                    predictor_pb2.Outcome(request_id=REQUEST, row=0, label_string="stay"),
                    predictor_pb2.Outcome(request_id=REQUEST, row=7, label_string="stay"),
                    predictor_pb2.Outcome(batch_id="no-such-batch", row=0, label_string="stay"),
                ]
            ),
            timeout=30,
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "2 of 3 outcomes name no logged prediction" in caught.value.details()
    [(field, description)] = violations(caught.value)
    assert field == "request_id"
    assert f"request_id='{REQUEST}' row=7" in description
    assert "batch_id='no-such-batch' row=0" in description
    assert labelled_count(logged) == before


@pytest.mark.parametrize(
    ("outcome", "field", "words"),
    [
        (predictor_pb2.Outcome(request_id=REQUEST, row=0), "label", "is not a string"),
        (predictor_pb2.Outcome(row=0, label_string="stay"), "request_id", "exactly one of"),
        (
            predictor_pb2.Outcome(request_id=REQUEST, row=-1, label_string="stay"),
            "row",
            "whole number >= 0",
        ),
        (
            predictor_pb2.Outcome(request_id=REQUEST, row=0, label_double=float("nan")),
            "label",
            "finite number",
        ),
    ],
)
def test_grpc_invalid_outcomes_name_the_field(
    logged: MonitoredModel, outcome: predictor_pb2.Outcome, field: str, words: str
) -> None:
    before = labelled_count(logged)
    valid = predictor_pb2.Outcome(request_id=REQUEST, row=1, label_string="stay")
    stub = predictor_pb2_grpc.PredictorStub(logged.predictor.channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.RecordOutcomes(predictor_pb2.RecordOutcomesRequest(outcomes=[valid, outcome]))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    [(named, description)] = violations(caught.value)
    assert named == field and words in description and "outcome 1" in description
    assert labelled_count(logged) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"outcomes": [{"request_id": REQUEST, "row": 0, "label": [1]}]}, "label"),
        ({"outcomes": [{"request_id": REQUEST, "row": "zero", "label": "stay"}]}, "row"),
        ({"outcomes": [{"request_id": REQUEST, "row": 0}]}, "label"),
        ({"outcomes": [{"request_id": REQUEST, "row": 0, "label": "x", "extra": 1}]}, "extra"),
        ({"outcomes": [{"request_id": REQUEST, "row": 9, "label": "stay"}]}, "request_id"),
        ({"outcomes": []}, "outcomes"),
    ],
)
def test_rest_json_bad_outcomes_are_400_naming_the_field(
    logged: MonitoredModel, body: dict[str, object], field: str
) -> None:
    before = labelled_count(logged)
    reply = logged.gateway.client.post("/outcomes", json=body)
    assert reply.status_code == 400, reply.text
    [detail] = reply.json()["details"]
    assert [violation["field"] for violation in detail["fieldViolations"]] == [field]
    assert labelled_count(logged) == before


def test_rest_csv_without_a_label_column_is_400(logged: MonitoredModel) -> None:
    reply = logged.gateway.client.post(
        "/outcomes",
        content=f"request_id,row\n{REQUEST},0\n",
        headers={"Content-Type": "text/csv"},
    )
    assert reply.status_code == 400
    assert reply.json()["message"].startswith("label: column missing from the CSV header")


def test_cli_refuses_a_file_without_a_label_column(logged: MonitoredModel, tmp_path: Path) -> None:
    path = tmp_path / "outcomes.csv"
    pd.DataFrame({"request_id": [REQUEST], "row": [0]}).to_csv(path, index=False)
    result = CliRunner().invoke(app, ["outcomes", str(path), "--store", logged.store_uri])
    assert result.exit_code == 1
    assert "column 'label': missing; expected columns request_id,row,label" in result.output


def test_cli_refuses_unknown_keys_and_stores_nothing(
    logged: MonitoredModel, tmp_path: Path
) -> None:
    before = labelled_count(logged)
    path = tmp_path / "outcomes.csv"
    pd.DataFrame(
        {"request_id": [REQUEST, "req-never-made"], "row": [0, 0], "label": ["stay", "churn"]}
    ).to_csv(path, index=False)
    result = CliRunner().invoke(app, ["outcomes", str(path), "--store", logged.store_uri])
    assert result.exit_code == 1
    assert (
        "1 of 2 outcomes name no logged prediction (request_id='req-never-made' row=0; 1 matched)"
        in (result.output)
    )
    assert labelled_count(logged) == before


def test_cli_names_a_row_that_is_not_a_number(logged: MonitoredModel, tmp_path: Path) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_text(f"request_id,row,label\n{REQUEST},first,stay\n")
    result = CliRunner().invoke(app, ["outcomes", str(path), "--store", logged.store_uri])
    assert result.exit_code == 1
    assert "column 'row': outcome 0: 'first' is not a whole number >= 0" in result.output
