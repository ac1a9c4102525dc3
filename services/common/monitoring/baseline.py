"""A model version's baseline: what monitoring compares live traffic against.

Stored as artifacts of the version's MLflow run, under `baseline/`:
- `features.parquet`: a seeded sample (at most `MAX_SAMPLE_ROWS`) of the training features;
- `holdout_predictions.parquet`: the model's predictions on the hold-out rows (column
  `prediction`, the distribution prediction drift is measured against) beside their true
  values (column `target`);
- `baseline.json`: problem type, target, hold-out metrics (named as `quality` names them),
  row counts and the sampling seed.
The trainer writes one at registration (trainer/baseline.py); `mlp monitor baseline` writes one
for a model registered before.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlplatform.common.monitoring import quality

ARTIFACT_DIR = "baseline"
MAX_SAMPLE_ROWS = 10_000
SAMPLE_SEED = 20_24
PREDICTION_COLUMN = "prediction"
TARGET_COLUMN = "target"
#: PyCaret's hold-out metric names, as `quality` names the same metrics.
PYCARET_METRIC_NAMES = {
    "Accuracy": "accuracy",
    "F1": "f1",
    "AUC": "auc",
    "MAE": "mae",
    "RMSE": "rmse",
    "R2": "r2",
}


@dataclass(frozen=True)
class Baseline:
    """A model version's reference data and hold-out figures."""

    problem_type: str
    target: str | None
    features: pd.DataFrame
    holdout: pd.DataFrame  # columns prediction and target
    holdout_metrics: dict[str, float]
    training_rows: int

    @property
    def holdout_predictions(self) -> pd.Series:
        return self.holdout[PREDICTION_COLUMN]

    def holdout_pairs(self) -> pd.DataFrame:
        return self.holdout[[PREDICTION_COLUMN, TARGET_COLUMN]]

    def summary(self) -> dict[str, Any]:
        return {
            "problem_type": self.problem_type,
            "target": self.target,
            "holdout_metrics": self.holdout_metrics,
            "training_rows": self.training_rows,
            "sample_rows": len(self.features),
            "holdout_rows": len(self.holdout),
            "sample_seed": SAMPLE_SEED,
        }


def feature_sample(features: pd.DataFrame) -> pd.DataFrame:
    """At most MAX_SAMPLE_ROWS rows of `features`, the same ones for the same data."""
    if len(features) <= MAX_SAMPLE_ROWS:
        return features.reset_index(drop=True)
    return features.sample(n=MAX_SAMPLE_ROWS, random_state=SAMPLE_SEED).reset_index(drop=True)


def pycaret_metrics(holdout_metrics: dict[str, float]) -> dict[str, float]:
    """PyCaret's hold-out scores under the names monitoring reports."""
    return {
        ours: float(holdout_metrics[theirs])
        for theirs, ours in PYCARET_METRIC_NAMES.items()
        if theirs in holdout_metrics
    }


def build_baseline(
    problem_type: str,
    target: str | None,
    training_features: pd.DataFrame,
    holdout_features: pd.DataFrame,
    holdout_labels: pd.Series,
    predict: Callable[[pd.DataFrame], Any],
    predict_proba: Callable[[pd.DataFrame], Any] | None = None,
    holdout_metrics: dict[str, float] | None = None,
) -> Baseline:
    """A baseline from training data and a hold-out set scored by `predict`.

    `holdout_metrics` (the trainer's, from the model before it was refitted on all data) win
    over the ones computed here, which are only honest when the model never saw the hold-out.
    """
    predictions = list(predict(holdout_features))
    probabilities = None
    if predict_proba is not None and problem_type == quality.CLASSIFICATION:
        classes, scores = predict_proba(holdout_features)
        probabilities = [
            {str(name): float(value) for name, value in zip(classes, row, strict=True)}
            for row in scores
        ]
    computed = quality.quality(problem_type, predictions, list(holdout_labels), probabilities)
    return Baseline(
        problem_type=problem_type,
        target=target,
        features=feature_sample(training_features),
        holdout=pd.DataFrame({PREDICTION_COLUMN: predictions, TARGET_COLUMN: list(holdout_labels)}),
        holdout_metrics={**computed, **(holdout_metrics or {})},
        training_rows=len(training_features),
    )


def log_baseline(client: MlflowClient, run_id: str, baseline: Baseline) -> None:
    """Write `baseline` as artifacts of run `run_id` (replacing an earlier one)."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        baseline.features.to_parquet(root / "features.parquet", index=False)
        baseline.holdout.to_parquet(root / "holdout_predictions.parquet", index=False)
        (root / "baseline.json").write_text(json.dumps(baseline.summary(), indent=2))
        client.log_artifacts(run_id, folder, ARTIFACT_DIR)


def load_baseline(client: MlflowClient, run_id: str) -> Baseline | None:
    """The baseline logged on run `run_id`, or None when it has none."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            local = Path(client.download_artifacts(run_id, ARTIFACT_DIR, folder))
        except (MlflowException, OSError):
            return None
        summary_path = local / "baseline.json"
        if not summary_path.exists():
            return None
        summary = json.loads(summary_path.read_text())
        features = pd.read_parquet(local / "features.parquet")
        holdout = pd.read_parquet(local / "holdout_predictions.parquet")
    return Baseline(
        problem_type=summary["problem_type"],
        target=summary.get("target"),
        features=features,
        holdout=holdout,
        holdout_metrics=dict(summary.get("holdout_metrics", {})),
        training_rows=int(summary.get("training_rows", len(features))),
    )
