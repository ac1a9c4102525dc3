"""The static PyCaret catalog used by pipeline validation matches the installed PyCaret.

Validation runs without importing PyCaret; these tests are what make a PyCaret
upgrade that adds, renames or drops an estimator, metric or setup() keyword fail
loudly instead of letting the table drift.
"""

from __future__ import annotations

import importlib.util
import inspect

import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, make_classification

from mlplatform.client import pycaret_catalog as catalog

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def experiments() -> dict[int, object]:
    from pycaret.classification import ClassificationExperiment
    from pycaret.regression import RegressionExperiment

    features, labels = make_classification(n_samples=120, n_features=4, random_state=0)
    classification_data = pd.DataFrame(features, columns=["a", "b", "c", "d"]).assign(y=labels)
    classification = ClassificationExperiment()
    classification.setup(classification_data, target="y", session_id=0, n_jobs=1, verbose=False)
    regression_data = load_diabetes(as_frame=True).frame.head(120)
    regression = RegressionExperiment()
    regression.setup(regression_data, target="target", session_id=0, n_jobs=1, verbose=False)
    return {catalog.CLASSIFICATION: classification, catalog.REGRESSION: regression}


@pytest.mark.parametrize("problem_type", [catalog.CLASSIFICATION, catalog.REGRESSION])
def test_estimator_ids_match_pycaret(experiments: dict, problem_type: int) -> None:
    offered = set(experiments[problem_type].models().index)
    installed = {
        estimator_id
        for estimator_id, package in catalog.ESTIMATORS[problem_type].items()
        if package is None or importlib.util.find_spec(package) is not None
    }
    assert installed == offered


@pytest.mark.parametrize("problem_type", [catalog.CLASSIFICATION, catalog.REGRESSION])
def test_metrics_match_pycaret(experiments: dict, problem_type: int) -> None:
    metrics = experiments[problem_type].get_metrics()
    from_pycaret = {
        (metric_id, row["Name"], row["Display Name"], bool(row["Greater is Better"]))
        for metric_id, row in metrics.iterrows()
    }
    ours = {
        (m.metric_id, m.name, m.display_name, m.greater_is_better)
        for m in catalog.METRICS[problem_type]
    }
    assert ours == from_pycaret


def test_setup_keywords_match_pycaret_signatures() -> None:
    from pycaret.classification import ClassificationExperiment
    from pycaret.regression import RegressionExperiment

    for problem_type, experiment_class in (
        (catalog.CLASSIFICATION, ClassificationExperiment),
        (catalog.REGRESSION, RegressionExperiment),
    ):
        keywords = set(inspect.signature(experiment_class.setup).parameters) - {"self"}
        assert keywords == catalog.SETUP_KEYWORDS[problem_type]
    assert catalog.SETUP_KEYWORDS[catalog.CLASSIFICATION] >= catalog.RESERVED_SETUP_KEYWORDS


@pytest.mark.parametrize("problem_type", [catalog.CLASSIFICATION, catalog.REGRESSION])
def test_plots_match_pycaret(experiments: dict, problem_type: int) -> None:
    """Every plot PyCaret offers, less the two that save no image, with PyCaret's titles."""
    available = dict(experiments[problem_type]._available_plots)
    available.pop("parameter")  # a table of hyper-parameters, not an image
    available.pop("residuals_interactive", None)  # a web page
    assert catalog.PLOTS[problem_type] == available
    assert set(catalog.DEFAULT_PLOTS[problem_type]) <= set(available)
