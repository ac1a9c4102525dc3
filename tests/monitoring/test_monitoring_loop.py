"""The monitoring loop end to end: a served classifier, predictions of rows drawn like its
training data and of rows with two columns shifted, true labels fed back through each way in
(gRPC RecordOutcomes, the gateway's POST /outcomes as JSON and CSV, `mlp outcomes`), and
`mlp monitor --json` reporting what happened."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from monitoring_model import FEATURES, MODEL, MonitoredModel, draw_rows, true_labels
from predictor_harness import wait_until
from sklearn.metrics import accuracy_score, f1_score
from typer.testing import CliRunner

from mlplatform.cli.main import app
from mlplatform.client.frames import dataframe_to_frame
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc

SHIFTED = ("f1", "f4")


def predict(monitored: MonitoredModel, rows: pd.DataFrame, request_id: str) -> list[str]:
    stub = predictor_pb2_grpc.PredictorStub(monitored.predictor.channel)
    response = stub.Predict(
        predictor_pb2.PredictRequest(
            inputs=dataframe_to_frame(rows), include_probabilities=True, request_id=request_id
        ),
        timeout=30,
    )
    return list(response.predictions.string_values.values) or [
        str(value) for value in response.predictions.string_values
    ]


def outcome_rows(request_id: str, labels: pd.Series, rows: range) -> list[dict[str, object]]:
    return [{"request_id": request_id, "row": row, "label": labels.iloc[row]} for row in rows]


def test_labels_fed_back_every_way_in_show_in_mlp_monitor(
    monitored: MonitoredModel, tmp_path: Path
) -> None:
    # Other tests log predictions of the same model: this one reads its own window.
    started = datetime.now(UTC)
    like_training = draw_rows(150, seed=11)
    shifted = draw_rows(150, seed=12)
    for column in SHIFTED:
        shifted[column] += 2.5
    predicted_like = predict(monitored, like_training, "req-like")
    predicted_shifted = predict(monitored, shifted, "req-shifted")
    labels_like = true_labels(like_training, seed=13)
    labels_shifted = true_labels(shifted, seed=14)
    wait_until(
        lambda: monitored.store.count_predictions(model_name=MODEL, since=started) == 300,
        what="the 300 predictions to be logged",
    )

    # gRPC: the first 100 rows of the first request.
    stub = predictor_pb2_grpc.PredictorStub(monitored.predictor.channel)
    answer = stub.RecordOutcomes(
        predictor_pb2.RecordOutcomesRequest(
            outcomes=[
                predictor_pb2.Outcome(request_id="req-like", row=row, label_string=label)
                for row, label in enumerate(labels_like.iloc[:100])
            ]
        ),
        timeout=30,
    )
    assert (answer.matched, answer.replaced) == (100, 0)

    # REST JSON: the rest of the first request.
    client = monitored.gateway.client
    reply = client.post(
        "/outcomes", json={"outcomes": outcome_rows("req-like", labels_like, range(100, 150))}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "matched": 50,
        "labelled": 50,
        "replaced": 0,
        "reused_prediction_keys": [],
        "reused_prediction_key_count": 0,
    }

    # REST CSV: half of the shifted request.
    csv_body = pd.DataFrame(outcome_rows("req-shifted", labels_shifted, range(75))).to_csv(
        index=False
    )
    reply = client.post("/outcomes", content=csv_body, headers={"Content-Type": "text/csv"})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "matched": 75,
        "labelled": 75,
        "replaced": 0,
        "reused_prediction_keys": [],
        "reused_prediction_key_count": 0,
    }

    # mlp outcomes: the other half, plus row 0 again (its second outcome replaces the first).
    outcome_file = tmp_path / "outcomes.parquet"
    pd.DataFrame(
        outcome_rows("req-shifted", labels_shifted, range(75, 150))
        + outcome_rows("req-shifted", labels_shifted, range(1))
    ).to_parquet(outcome_file)
    runner = CliRunner()
    result = runner.invoke(app, ["outcomes", str(outcome_file), "--store", monitored.store_uri])
    assert result.exit_code == 0, result.output
    assert "matched 76 outcomes" in result.output
    assert "76 predictions labelled, 1 of them replacing an earlier outcome" in result.output

    result = runner.invoke(
        app,
        [
            "monitor",
            MODEL,
            "--json",
            "--since",
            started.isoformat(),
            "--store",
            monitored.store_uri,
            "--tracking-uri",
            monitored.tracking_uri,
            "--html",
            str(tmp_path / "report.html"),
        ],
    )
    assert result.exit_code == 0, (result.output, result.exception)
    summary = json.loads(result.stdout)
    assert summary["model"] == MODEL
    [version] = summary["versions"]
    assert (version["version"], version["predictions"], version["labelled"]) == ("1", 300, 300)

    predicted = predicted_like + predicted_shifted
    actual = list(labels_like) + list(labels_shifted)
    assert version["quality"]["accuracy"] == pytest.approx(accuracy_score(actual, predicted))
    assert version["quality"]["f1"] == pytest.approx(f1_score(actual, predicted, pos_label="stay"))
    assert 0.5 < version["quality"]["auc"] <= 1.0
    assert set(version["baseline"]) == {"accuracy", "f1", "auc"}
    over_time = version["quality_over_time"]  # one day, or two when the test spans midnight
    assert sum(day["labelled"] for day in over_time) == 300
    correct = sum(day["accuracy"] * day["labelled"] for day in over_time)
    assert correct / 300 == pytest.approx(version["quality"]["accuracy"])
    drifted = {name for name, column in version["drift"]["features"].items() if column["drifted"]}
    assert drifted == set(SHIFTED)
    assert set(version["drift"]["features"]) == set(FEATURES)
    assert version["drift"]["share"] == pytest.approx(len(SHIFTED) / len(FEATURES))
    assert (tmp_path / "report.html").stat().st_size > 10_000
    assert (tmp_path / "report-quality.html").exists()
