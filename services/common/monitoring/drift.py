"""Data drift and prediction drift, computed by Evidently against a version's baseline.

Evidently picks the test per column from its type and the sample sizes (Kolmogorov-Smirnov
or Wasserstein for numbers, chi-squared, Z or Jensen-Shannon for categories) and reports the
method it used beside each score; we only shape its answer. `DO_NOT_TRACK` is set before it is
imported: Evidently otherwise sends usage telemetry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

os.environ.setdefault("DO_NOT_TRACK", "1")

from mlplatform.common.extras import missing_extra

try:
    from evidently import ColumnMapping
    from evidently.metric_preset import (
        ClassificationPreset,
        DataDriftPreset,
        RegressionPreset,
    )
    from evidently.metrics import ColumnDriftMetric
    from evidently.report import Report
except ImportError as error:
    raise missing_extra("monitor", error) from error

PREDICTION = "prediction"
TARGET = "target"


@dataclass(frozen=True)
class DriftResult:
    """Per-feature drift and the share of drifted features."""

    share: float
    features: dict[str, dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {"share": self.share, "features": self.features}


def _column_mapping(reference: pd.DataFrame) -> ColumnMapping:
    numerical = [
        name
        for name in reference.columns
        if pd.api.types.is_numeric_dtype(reference[name])
        and not pd.api.types.is_bool_dtype(reference[name])
    ]
    categorical = [name for name in reference.columns if name not in numerical]
    return ColumnMapping(
        target=None,
        prediction=None,
        numerical_features=numerical,
        categorical_features=categorical,
    )


def _aligned(reference: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """`current` with the reference's columns and, where it can be, their types."""
    aligned = current.reindex(columns=reference.columns)
    for name in reference.columns:
        if pd.api.types.is_numeric_dtype(reference[name]) and not pd.api.types.is_bool_dtype(
            reference[name]
        ):
            aligned[name] = pd.to_numeric(aligned[name], errors="coerce")
    return aligned


def _column_result(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "drifted": bool(result["drift_detected"]),
        "score": float(result["drift_score"]),
        "method": str(result["stattest_name"]),
    }


def data_drift(reference: pd.DataFrame, current: pd.DataFrame) -> DriftResult:
    """Drift of every baseline feature in `current` (live inputs) against `reference`."""
    report = Report(metrics=[DataDriftPreset()])
    report.run(
        reference_data=reference,
        current_data=_aligned(reference, current),
        column_mapping=_column_mapping(reference),
    )
    features: dict[str, dict[str, Any]] = {}
    share = 0.0
    for metric in report.as_dict()["metrics"]:
        result = metric["result"]
        if "drift_by_columns" in result:
            features = {
                name: _column_result(column) for name, column in result["drift_by_columns"].items()
            }
        elif "share_of_drifted_columns" in result:
            share = float(result["share_of_drifted_columns"])
    return DriftResult(share=share, features=features)


def prediction_drift(reference: pd.Series, current: pd.Series) -> dict[str, Any] | None:
    """Drift of the predictions' distribution against the hold-out predictions."""
    if reference.empty or current.empty:
        return None
    numeric = pd.api.types.is_numeric_dtype(reference) and not pd.api.types.is_bool_dtype(reference)
    if not numeric:
        reference, current = reference.astype(str), current.astype(str)
    report = Report(metrics=[ColumnDriftMetric(column_name=PREDICTION)])
    report.run(
        reference_data=pd.DataFrame({PREDICTION: reference.to_numpy()}),
        current_data=pd.DataFrame(
            {PREDICTION: pd.to_numeric(current, errors="coerce") if numeric else current}
        ),
        column_mapping=ColumnMapping(
            target=None,
            prediction=None,
            numerical_features=[PREDICTION] if numeric else [],
            categorical_features=[] if numeric else [PREDICTION],
        ),
    )
    return _column_result(report.as_dict()["metrics"][0]["result"])


def save_html_report(
    path: Path,
    problem_type: str,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    reference_pairs: pd.DataFrame | None,
    current_pairs: pd.DataFrame | None,
) -> None:
    """One self-contained HTML page: data drift, and quality when both sides have labels
    (`*_pairs` frames with columns `target` and `prediction`)."""
    metrics: list[Any] = [DataDriftPreset()]
    report = Report(metrics=metrics)
    report.run(
        reference_data=reference,
        current_data=_aligned(reference, current),
        column_mapping=_column_mapping(reference),
    )
    report.save_html(str(path))
    if reference_pairs is None or current_pairs is None or current_pairs.empty:
        return
    mapping = ColumnMapping(target=TARGET, prediction=PREDICTION)
    if problem_type == "regression":
        preset: Any = RegressionPreset()
    else:
        # Class names as text on both sides; the positive class is the last in sorted order,
        # as `quality` scores F1 (Evidently's default, 1, is rarely a class name).
        reference_pairs, current_pairs = reference_pairs.astype(str), current_pairs.astype(str)
        classes = sorted({*reference_pairs.stack(), *current_pairs.stack()})
        mapping.pos_label = classes[-1]
        preset = ClassificationPreset()
    quality_report = Report(metrics=[preset])
    quality_report.run(
        reference_data=reference_pairs, current_data=current_pairs, column_mapping=mapping
    )
    quality_path = path.with_name(f"{path.stem}-quality{path.suffix}")
    quality_report.save_html(str(quality_path))
