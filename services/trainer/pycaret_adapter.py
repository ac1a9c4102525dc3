"""Every PyCaret call the platform makes, in one file, so a PyCaret upgrade touches one file.

Longer than ~300 lines on purpose: splitting it would spread PyCaret calls over modules.

PyCaret is driven through its experiment objects (`ClassificationExperiment`,
`RegressionExperiment`), never the module-level functional API: that API keeps global
state that two jobs in one process would share, and PyCaret's next major drops it.
PyCaret's own MLflow logging is off (it breaks on MLflow 3, see tracking.py); we log
every evaluated model ourselves from what the experiment records.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from google.protobuf import json_format

from mlplatform.client import pycaret_catalog as catalog
from mlplatform.common.transformers import TrigonometryFeatures
from mlplatform.v1 import pipeline_pb2

#: `setup()` switches that add a preprocessing step after imputation and encoding, in the
#: order PyCaret 3.3 adds them (pycaret/classification/oop.py `setup`); their count tells
#: where our trigonometry features go so they see imputed, encoded, untransformed columns.
_STEPS_AFTER_ENCODING = (
    "polynomial_features", "low_variance_threshold", "group_features",
    "remove_multicollinearity", "bin_numeric_features", "remove_outliers", "fix_imbalance",
    "transformation", "normalize", "pca", "feature_selection",
)  # fmt: skip
_TYPED_SETUP_FIELDS = (
    "fix_imbalance", "pca", "normalize", "normalize_method", "remove_outliers",
    "polynomial_features", "feature_selection", "train_size",
)  # fmt: skip
TRIGONOMETRY_STEP = "trigonometry_features"


@dataclass
class EvaluatedModel:
    """A model PyCaret cross-validated, with what MLflow should record of it."""

    name: str
    stage: str
    estimator_id: str | None
    model: Any
    params: dict[str, Any]
    #: Mean cross-validation score per metric display name ("Accuracy", "Prec.", ...).
    cv_metrics: dict[str, float] = field(default_factory=dict)


#: Called with (model, mean CV scores) each time PyCaret records a cross-validated model.
EvaluationListener = Callable[[Any, dict[str, float]], None]


class _NotifyingContainer(list):  # type: ignore[type-arg]
    """PyCaret's record of evaluated models, telling a listener as each model is added.

    `compare_models` evaluates every estimator inside one call; appending to this list is
    the one point where each result becomes known, so live progress hooks in here.
    """

    def __init__(self, entries: list[Any], listener: EvaluationListener) -> None:
        super().__init__(entries)
        self._listener = listener

    def append(self, entry: Any) -> None:
        super().append(entry)
        # Progress is a courtesy; training goes on without it.
        with contextlib.suppress(Exception):
            self._listener(entry["model"], _mean_scores(entry["scores"]))


def _plain_number(value: Any) -> Any:
    """JSON numbers arrive from a Struct as floats; PyCaret wants 2, not 2.0, for counts."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_plain_number(item) for item in value]
    return value


def setup_keywords(
    params: pipeline_pb2.FeatureEngineeringParams, feature_columns: list[str]
) -> dict[str, Any]:
    """`setup()` keywords from a pipeline's feature-engineering parameters."""
    keywords: dict[str, Any] = {
        name: getattr(params, name) for name in _TYPED_SETUP_FIELDS if params.HasField(name)
    }
    if params.HasField("pca_components"):
        components = params.pca_components
        keywords["pca_components"] = int(components) if components >= 1 else components
    if params.HasField("session_id"):
        keywords["session_id"] = params.session_id
    if params.ignore_features:
        keywords["ignore_features"] = list(params.ignore_features)
    extra = (
        json_format.MessageToDict(params.setup_kwargs) if params.HasField("setup_kwargs") else {}
    )
    keywords.update({name: _plain_number(value) for name, value in extra.items()})
    if params.trigonometry_features:
        ignored = set(keywords.get("ignore_features") or ())
        columns = [name for name in feature_columns if name not in ignored]
        after = sum(
            1 for name in _STEPS_AFTER_ENCODING if keywords.get(name) not in (None, False, [], "")
        )
        keywords["custom_pipeline"] = [(TRIGONOMETRY_STEP, TrigonometryFeatures(columns=columns))]
        keywords["custom_pipeline_position"] = -(after + 1)
    return keywords


class TrainingSession:
    """One PyCaret experiment: setup, compare, tune, ensemble, finalize, export."""

    def __init__(self, problem_type: int) -> None:
        if problem_type == catalog.CLASSIFICATION:
            from pycaret.classification import ClassificationExperiment

            self._experiment: Any = ClassificationExperiment()
        elif problem_type == catalog.REGRESSION:
            from pycaret.regression import RegressionExperiment

            self._experiment = RegressionExperiment()
        else:
            raise ValueError(
                f"problem type {problem_type} is neither classification nor regression"
            )
        self.problem_type = problem_type
        self._recorded = 0
        #: compare_models' result table (estimator id -> mean CV scores).
        self._compare_scores: dict[str, dict[str, float]] = {}
        #: compare_models' whole grid: every estimator, every metric.
        self._leaderboard: pd.DataFrame | None = None

    def setup(
        self,
        data: pd.DataFrame,
        target: str,
        params: pipeline_pb2.FeatureEngineeringParams,
        fold: int,
    ) -> dict[str, Any]:
        """Runs `setup()`; returns the keywords it was given (minus the data)."""
        features = [name for name in data.columns if name != target]
        keywords = setup_keywords(params, features)
        keywords.setdefault("session_id", 123)
        self._experiment.setup(
            data,
            target=target,
            fold=fold,
            # One level of parallelism: folds and estimators single-threaded. Nested
            # parallelism (parallel folds around LightGBM's own threads) thrashes 2 cores;
            # a host scales by running more workers.
            n_jobs=1,
            verbose=False,
            html=False,
            log_experiment=False,
            system_log=False,
            **keywords,
        )
        return {name: value for name, value in keywords.items() if name != "custom_pipeline"}

    def compare(self, include: list[str], n_select: int, metric: str) -> list[Any]:
        """The `n_select` best of `include` by cross-validated `metric`, best first."""
        selected = self._experiment.compare_models(
            include=include or None,
            n_select=n_select,
            sort=metric,
            verbose=False,
            errors="raise",
        )
        grid = self._experiment.pull()
        self._leaderboard = grid.copy()
        self._compare_scores = {
            str(estimator_id): {k: float(v) for k, v in row.items() if _is_number(v)}
            for estimator_id, row in grid.iterrows()
        }
        return selected if isinstance(selected, list) else [selected]

    def on_evaluated(self, listener: EvaluationListener) -> None:
        """Calls `listener` as each model is cross-validated, from now on."""
        container = self._experiment._master_model_container
        self._experiment._master_model_container = _NotifyingContainer(container, listener)

    def compare_count(self, include: list[str]) -> int:
        """How many estimators `compare` evaluates (all of PyCaret's turbo set when empty)."""
        if include:
            return len(include)
        catalog_frame = self._experiment.models(internal=True)
        return int(catalog_frame["Turbo"].sum()) if "Turbo" in catalog_frame else len(catalog_frame)

    def leaderboard(self) -> pd.DataFrame | None:
        """The compare grid: one row per estimator (id as index), model name, every metric."""
        if self._leaderboard is None:
            return None
        return self._leaderboard.drop(columns=["Object", "runtime"], errors="ignore")

    def holdout_data(self) -> pd.DataFrame:
        """The hold-out rows PyCaret set aside at setup, untransformed, target included."""
        return self._experiment.test.copy()

    def holdout_metrics_of(self, pipeline: Any, data: pd.DataFrame) -> dict[str, float]:
        """Scores of a whole saved pipeline (another run's model) on `data`, computed by the
        same PyCaret metric code as `holdout_metrics`, so the two compare like for like."""
        self._experiment.predict_model(pipeline, data=data, verbose=False)
        row = self._experiment.pull().iloc[0]
        return {name: float(value) for name, value in row.items() if _is_number(value)}

    def save_plot(self, model: Any, plot: str, folder: str) -> Path:
        """Draws PyCaret's `plot` of `model` into `folder` (PNG); returns the file.

        matplotlib's Agg backend: no display on a worker, and no window left open.
        """
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt

        try:
            saved = self._experiment.plot_model(model, plot=plot, save=folder, verbose=False)
        finally:
            plt.close("all")
        if not saved:
            raise RuntimeError(f"PyCaret saved no file for plot '{plot}'")
        return Path(saved)

    def tune(self, model: Any, n_iter: int, metric: str) -> Any:
        """Random-search tuning; keeps the untuned model when tuning did not help."""
        return self._experiment.tune_model(
            model, n_iter=n_iter or 10, optimize=metric, choose_better=True, verbose=False
        )

    def blend(self, models: list[Any], metric: str) -> Any:
        return self._experiment.blend_models(models, optimize=metric, verbose=False)

    def stack(self, models: list[Any], metric: str) -> Any:
        return self._experiment.stack_models(models, optimize=metric, verbose=False)

    def finalize(self, model: Any) -> Any:
        """The model refitted on all the data (training and hold-out)."""
        return self._experiment.finalize_model(model)

    def holdout_metrics(self, model: Any) -> dict[str, float]:
        """Scores on the hold-out set PyCaret kept aside at setup."""
        self._experiment.predict_model(model, verbose=False)
        row = self._experiment.pull().iloc[0]
        return {name: float(value) for name, value in row.items() if _is_number(value)}

    def holdout_features_and_target(self) -> tuple[pd.DataFrame, pd.Series]:
        """The hold-out rows PyCaret kept aside at setup, untransformed, and their targets."""
        return self._experiment.get_config("X_test"), self._experiment.get_config("y_test")

    def cv_score(self, model: Any, metric_display_name: str) -> float | None:
        """The mean cross-validated `metric` recorded for `model`, if PyCaret evaluated it.

        compare_models refits the models it returns, so those are found by estimator id
        in its result table; tuned models and ensembles by identity in PyCaret's record.
        """
        for entry in reversed(self._experiment._master_model_container):
            if entry["model"] is model:
                return _mean_scores(entry["scores"]).get(metric_display_name)
        compared = self._compare_scores.get(self._model_id(model) or "")
        return None if compared is None else compared.get(metric_display_name)

    def drain_evaluated(self, stage: str) -> list[EvaluatedModel]:
        """Every model cross-validated since the last call (PyCaret keeps them in order)."""
        container = self._experiment._master_model_container
        fresh = container[self._recorded :]
        self._recorded = len(container)
        return [
            EvaluatedModel(
                name=self._model_name(entry["model"]),
                stage=stage,
                estimator_id=self._model_id(entry["model"]),
                model=entry["model"],
                params=_flat_params(entry["model"]),
                cv_metrics=_mean_scores(entry["scores"]),
            )
            for entry in fresh
        ]

    def export_pipeline(self, model: Any) -> Any:
        """The whole pipeline (preprocessing + estimator), as the predictor will load it."""
        with tempfile.TemporaryDirectory() as folder:
            pipeline, _ = self._experiment.save_model(
                model, str(Path(folder) / "model"), verbose=False
            )
        return pipeline

    def model_name(self, model: Any) -> str:
        return self._model_name(model)

    def model_id(self, model: Any) -> str | None:
        return self._model_id(model)

    def _model_name(self, model: Any) -> str:
        try:
            return str(self._experiment._get_model_name(model))
        except Exception:  # a PyCaret internal: fall back to the class name
            return type(model).__name__

    def _model_id(self, model: Any) -> str | None:
        try:
            return str(self._experiment._get_model_id(model))
        except Exception:
            return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _mean_scores(scores: pd.DataFrame) -> dict[str, float]:
    """The 'Mean' row of PyCaret's per-fold score table."""
    if "Mean" not in scores.index:
        return {}
    return {name: float(value) for name, value in scores.loc["Mean"].items() if _is_number(value)}


def _flat_params(model: Any, limit: int = 250) -> dict[str, Any]:
    """Top-level estimator parameters as short strings (MLflow params are text)."""
    try:
        params = model.get_params(deep=False)
    except Exception:
        return {}
    return {name: str(value)[:limit] for name, value in params.items()}
