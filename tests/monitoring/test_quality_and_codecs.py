"""The plain functions under monitoring: quality metrics against scikit-learn's, and the
gateway's reading of outcome bodies (CSV label typing)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics

from mlplatform.common.monitoring import quality
from mlplatform.gateway.outcome_codec import request_from_csv, request_from_json
from mlplatform.gateway.status_mapping import ApiError


def test_regression_quality_is_sklearns() -> None:
    rng = np.random.default_rng(0)
    actual = rng.normal(size=50)
    predicted = actual + rng.normal(scale=0.3, size=50)
    found = quality.quality("regression", list(predicted), list(actual))
    assert found["mae"] == pytest.approx(metrics.mean_absolute_error(actual, predicted))
    assert found["rmse"] == pytest.approx(math.sqrt(metrics.mean_squared_error(actual, predicted)))
    assert found["r2"] == pytest.approx(metrics.r2_score(actual, predicted))


def test_multiclass_quality_is_sklearns_weighted_f1_and_ovr_auc() -> None:
    rng = np.random.default_rng(1)
    classes = ["a", "b", "c"]
    actual = list(rng.choice(classes, size=60))
    scores = rng.dirichlet([1, 1, 1], size=60)
    predicted = [classes[i] for i in scores.argmax(axis=1)]
    probabilities = [dict(zip(classes, row, strict=True)) for row in scores]
    found = quality.quality("classification", predicted, actual, probabilities)
    assert found["accuracy"] == pytest.approx(metrics.accuracy_score(actual, predicted))
    assert found["f1"] == pytest.approx(metrics.f1_score(actual, predicted, average="weighted"))
    assert found["auc"] == pytest.approx(
        metrics.roc_auc_score(actual, scores, multi_class="ovr", labels=classes)
    )


def test_numeric_labels_match_text_predictions() -> None:
    # A CSV label 1 and a predicted class "1" name the same class.
    found = quality.quality("classification", ["1", "0", "1"], [1, 0, 0])
    assert found["accuracy"] == pytest.approx(2 / 3)
    assert "auc" not in found  # no probabilities were logged


def test_csv_labels_are_typed_per_column() -> None:
    whole = request_from_csv(b"request_id,row,label\nr,0,1\nr,1,0\n")
    assert [o.WhichOneof("label") for o in whole.outcomes] == ["label_int64"] * 2
    mixed = request_from_csv(b"request_id,row,label\nr,0,1\nr,1,0.5\n")
    assert [o.label_double for o in mixed.outcomes] == [1.0, 0.5]
    flags = request_from_csv(b"batch_id,row,label\nb,0,true\nb,1,False\n")
    assert [o.label_bool for o in flags.outcomes] == [True, False]
    assert flags.outcomes[0].batch_id == "b"
    text = request_from_csv(b"request_id,row,label\nr,0,yes\nr,1,1\n")
    assert [o.label_string for o in text.outcomes] == ["yes", "1"]


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"outcomes": [{"request_id": "r", "batch_id": "b", "row": 0, "label": 1}]}, "request_id"),
        ({"outcomes": [{"request_id": 5, "row": 0, "label": 1}]}, "request_id"),
        ({"outcomes": [{"request_id": "r", "row": True, "label": 1}]}, "row"),
        ({"outcomes": [{"request_id": "r", "row": 0, "label": 2**70}]}, "label"),
        ({"outcomes": ["r,0,1"]}, "outcomes"),
        ([], "outcomes"),
    ],
)
def test_json_outcomes_that_do_not_fit_name_the_field(document: object, field: str) -> None:
    with pytest.raises(ApiError) as caught:
        request_from_json(document)
    [detail] = caught.value.details
    assert [violation["field"] for violation in detail["fieldViolations"]] == [field]
