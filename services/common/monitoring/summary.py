"""`mlp monitor`'s figures for a model: per version, traffic, live quality beside the
baseline's, and drift against the baseline.

Counting happens in the store (`count_predictions`, `count_labelled`); quality reads at most
`MAX_LABELLED_ROWS` of the newest labelled predictions and drift at most `MAX_CURRENT_ROWS` of
the newest inputs, so a version with millions of logged predictions costs what those samples
cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from mlflow import MlflowClient

from mlplatform.common.monitoring import drift, quality
from mlplatform.common.monitoring.baseline import Baseline, load_baseline
from mlplatform.common.store import Store

MAX_LABELLED_ROWS = 200_000
MAX_CURRENT_ROWS = 10_000


@dataclass(frozen=True)
class VersionData:
    """What one version's summary is computed from (kept for the HTML report)."""

    version: str
    baseline: Baseline | None
    current_inputs: pd.DataFrame
    current_predictions: pd.Series
    labelled: pd.DataFrame  # columns prediction, target, probabilities


def registered_versions(client: MlflowClient, model_name: str) -> list[str]:
    """Every registered version of `model_name`, newest first."""
    versions = client.search_model_versions(f"name = '{model_name}'")
    return sorted((str(version.version) for version in versions), key=int, reverse=True)


def _problem_type(baseline: Baseline | None, labelled: pd.DataFrame) -> str:
    if baseline is not None:
        return baseline.problem_type
    labels = labelled["target"] if not labelled.empty else pd.Series(dtype=object)
    numeric = pd.api.types.is_float_dtype(labels)
    return quality.REGRESSION if numeric else quality.CLASSIFICATION


def version_data(
    store: Store,
    client: MlflowClient,
    model_name: str,
    version: str,
    since: datetime | None,
) -> VersionData:
    run_id = client.get_model_version(model_name, version).run_id
    baseline = load_baseline(client, run_id) if run_id else None
    records = store.query_predictions(
        model_name=model_name,
        model_version=version,
        since=since,
        limit=MAX_CURRENT_ROWS,
        newest_first=True,
    )
    current_inputs = pd.DataFrame([record.input_row for record in records])
    current_predictions = pd.Series([record.prediction for record in records], dtype=object)
    pairs = store.labelled_predictions(model_name, version, since=since, limit=MAX_LABELLED_ROWS)
    labelled = pd.DataFrame(
        {
            "prediction": [pair.prediction for pair in pairs],
            "target": [pair.label for pair in pairs],
            "probabilities": [pair.probabilities for pair in pairs],
            "created_at": [pair.created_at for pair in pairs],
        }
    )
    return VersionData(version, baseline, current_inputs, current_predictions, labelled)


def quality_over_time(problem_type: str, labelled: pd.DataFrame) -> list[dict[str, Any]]:
    """Live quality per UTC day the labelled predictions were made, oldest day first."""
    if labelled.empty:
        return []
    days = pd.to_datetime(labelled["created_at"], utc=True).dt.strftime("%Y-%m-%d")
    series = []
    for day, rows in labelled.groupby(days, sort=True):
        figures = quality.quality(
            problem_type,
            list(rows["prediction"]),
            list(rows["target"]),
            list(rows["probabilities"]),
        )
        series.append({"day": day, "labelled": len(rows), **figures})
    return series


def version_summary(
    store: Store,
    data: VersionData,
    model_name: str,
    since: datetime | None,
) -> dict[str, Any]:
    """One entry of `mlp monitor --json`'s `versions` list."""
    baseline = data.baseline
    problem_type = _problem_type(baseline, data.labelled)
    live_quality = quality.quality(
        problem_type,
        list(data.labelled["prediction"]),
        list(data.labelled["target"]),
        list(data.labelled["probabilities"]),
    )
    entry: dict[str, Any] = {
        "version": data.version,
        "problem_type": problem_type,
        "predictions": store.count_predictions(
            model_name=model_name, model_version=data.version, since=since
        ),
        "labelled": store.count_labelled(model_name, data.version, since=since),
        "quality": live_quality,
        "quality_over_time": quality_over_time(problem_type, data.labelled),
        "baseline": None if baseline is None else baseline.holdout_metrics,
        "drift": None,
        "prediction_drift": None,
    }
    if baseline is not None and not data.current_inputs.empty:
        entry["drift"] = drift.data_drift(baseline.features, data.current_inputs).as_json()
        entry["prediction_drift"] = drift.prediction_drift(
            baseline.holdout_predictions, data.current_predictions
        )
    return entry


def monitor_summary(
    store: Store,
    client: MlflowClient,
    model_name: str,
    version: str | None = None,
    since: datetime | None = None,
) -> tuple[dict[str, Any], list[VersionData]]:
    """`{"model": NAME, "versions": [...]}`, newest version first: every version that served
    a prediction in the window, or only `version` when given."""
    versions = [version] if version is not None else registered_versions(client, model_name)
    entries, data = [], []
    for candidate in versions:
        served = store.count_predictions(
            model_name=model_name, model_version=candidate, since=since
        )
        if version is None and served == 0:
            continue
        version_inputs = version_data(store, client, model_name, candidate, since)
        entries.append(version_summary(store, version_inputs, model_name, since))
        data.append(version_inputs)
    return {"model": model_name, "versions": entries}, data
