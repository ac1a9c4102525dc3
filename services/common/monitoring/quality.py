"""Quality metrics of predictions against their true labels, one definition for the training
baseline and for live monitoring, so the two columns of a report compare like with like.

Classification: accuracy, F1 (binary on the second class in sorted order, as PyCaret scores
it; weighted over classes beyond two) and ROC AUC when probabilities were logged.
Regression: MAE, RMSE, R2. The formulas are scikit-learn's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics

CLASSIFICATION = "classification"
REGRESSION = "regression"


def _same_kind(predictions: Sequence[Any], labels: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """Predictions and labels as comparable values: text on both sides unless both are
    numbers (a CSV label `1` and a predicted class `"1"` name the same class)."""
    numbers = (int, float, np.integer, np.floating)
    if all(isinstance(value, numbers) and not isinstance(value, bool) for value in labels) and all(
        isinstance(value, numbers) and not isinstance(value, bool) for value in predictions
    ):
        return list(predictions), list(labels)
    return [str(value) for value in predictions], [str(value) for value in labels]


def classification_quality(
    predictions: Sequence[Any],
    labels: Sequence[Any],
    probabilities: Sequence[dict[str, float] | None] | None = None,
) -> dict[str, float]:
    """accuracy and f1, plus auc when every row has probabilities and both classes occur."""
    if not labels:
        return {}
    predicted, actual = _same_kind(predictions, labels)
    classes = sorted({*predicted, *actual}, key=str)
    if len(classes) <= 2:
        positive = classes[-1]
        f1 = metrics.f1_score(actual, predicted, pos_label=positive, average="binary")
    else:
        f1 = metrics.f1_score(actual, predicted, average="weighted")
    quality = {"accuracy": float(metrics.accuracy_score(actual, predicted)), "f1": float(f1)}
    auc = _auc(actual, probabilities)
    if auc is not None:
        quality["auc"] = auc
    return quality


def _auc(
    actual: list[Any], probabilities: Sequence[dict[str, float] | None] | None
) -> float | None:
    if not probabilities or any(row is None for row in probabilities):
        return None
    class_names = sorted(probabilities[0])  # type: ignore[arg-type]
    truth = [str(value) for value in actual]
    if len(set(truth)) < 2 or not set(truth) <= set(class_names):
        return None
    scores = np.array([[row[name] for name in class_names] for row in probabilities])  # type: ignore[index]
    if len(class_names) == 2:
        return float(metrics.roc_auc_score(truth, scores[:, 1]))
    return float(metrics.roc_auc_score(truth, scores, multi_class="ovr", labels=class_names))


def regression_quality(predictions: Sequence[Any], labels: Sequence[Any]) -> dict[str, float]:
    if not labels:
        return {}
    predicted = np.asarray(predictions, dtype=float)
    actual = np.asarray(labels, dtype=float)
    quality = {
        "mae": float(metrics.mean_absolute_error(actual, predicted)),
        "rmse": float(math.sqrt(metrics.mean_squared_error(actual, predicted))),
    }
    if len(actual) > 1:
        quality["r2"] = float(metrics.r2_score(actual, predicted))
    return quality


def quality(
    problem_type: str,
    predictions: Sequence[Any],
    labels: Sequence[Any],
    probabilities: Sequence[dict[str, float] | None] | None = None,
) -> dict[str, float]:
    if problem_type == REGRESSION:
        return regression_quality(predictions, labels)
    return classification_quality(predictions, labels, probabilities)
