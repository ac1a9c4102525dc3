"""Benchmark of `mlp monitor`'s summary over a large prediction log.

Run: python bench/bench_monitor.py [--rows N] [--labelled M] [--features F]

Logs N batch predictions of a registered classifier with F numeric features into a fresh
SQLite store (the inferer's write path), attaches M outcomes, then times the summary one
version gets: counting predictions and labelled ones in the store, reading the newest
labelled pairs for quality, and drift of the newest inputs against the baseline (Evidently).
The in-process floor beside it is computing the same quality metrics with scikit-learn on
pairs already in memory. Exits 1 when the summary takes 30 seconds or more.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from mlplatform.common.monitoring import quality
from mlplatform.common.monitoring.baseline import build_baseline, log_baseline
from mlplatform.common.monitoring.summary import monitor_summary
from mlplatform.common.store import BatchPredictions, Outcome, open_store

LIMIT_SECONDS = 30.0
CHUNK_ROWS = 50_000
MODEL = "bench_monitor"


def register(root: Path, features: int) -> tuple[MlflowClient, LogisticRegression]:
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        rng.normal(size=(2000, features)), columns=[f"f{i}" for i in range(features)]
    )
    labels = np.where(frame["f0"] > 0, "yes", "no")
    model = LogisticRegression().fit(frame, labels)
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
    client = MlflowClient(tracking_uri)
    client.create_registered_model(MODEL)
    version = client.create_model_version(MODEL, f"runs:/{run.info.run_id}/model", run.info.run_id)
    baseline = build_baseline(
        "classification", "label", frame, frame.iloc[:500], pd.Series(labels[:500]), model.predict
    )
    log_baseline(client, run.info.run_id, baseline)
    assert str(version.version) == "1"
    return client, model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--labelled", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=30)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        client, _model = register(root, args.features)
        store = open_store(f"sqlite:///{root / 'store.db'}")
        rng = np.random.default_rng(1)
        started = time.perf_counter()
        for offset in range(0, args.rows, CHUNK_ROWS):
            rows = min(CHUNK_ROWS, args.rows - offset)
            inputs = pd.DataFrame(
                rng.normal(size=(rows, args.features)),
                columns=[f"f{i}" for i in range(args.features)],
            )
            store.append_batch_predictions(
                BatchPredictions(
                    model_name=MODEL,
                    model_version="1",
                    batch_id="bench",
                    row_offset=offset,
                    inputs=inputs,
                    predictions=np.where(inputs["f0"] > 0, "yes", "no").astype(object),
                )
            )
        logged_s = time.perf_counter() - started
        labels = rng.choice(["yes", "no"], size=args.labelled)
        started = time.perf_counter()
        report = store.record_outcomes(
            [
                Outcome(kind="batch", key="bench", row_index=row, label=str(label))
                for row, label in enumerate(labels)
            ]
        )
        outcomes_s = time.perf_counter() - started
        assert report.matched == args.labelled
        started = time.perf_counter()
        summary, _data = monitor_summary(store, client, MODEL)
        summary_s = time.perf_counter() - started
        [entry] = summary["versions"]
        pairs = store.labelled_predictions(MODEL, "1", limit=args.labelled)
        started = time.perf_counter()
        quality.classification_quality([p.prediction for p in pairs], [p.label for p in pairs])
        floor_s = time.perf_counter() - started
        store.close()
    print(
        f"logged {args.rows:,} predictions in {logged_s:.1f} s; "
        f"{args.labelled:,} outcomes in {outcomes_s:.1f} s"
    )
    print(
        f"summary of {entry['predictions']:,} predictions ({entry['labelled']:,} labelled, "
        f"{args.features} features): {summary_s:.1f} s"
        f" (floor, sklearn metrics on the pairs in memory: {floor_s:.2f} s)"
    )
    print(f"drift share {entry['drift']['share']:.2f}, accuracy {entry['quality']['accuracy']:.3f}")
    if summary_s >= LIMIT_SECONDS:
        print(f"FAIL: the summary took {summary_s:.1f} s, limit {LIMIT_SECONDS:.0f} s")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
