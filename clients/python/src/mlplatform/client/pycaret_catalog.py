"""What PyCaret 3.3.2 accepts, as data: estimator ids, metric names, `setup()` keywords.

Pipeline files are validated before any work starts, on machines that may not have
PyCaret installed (and importing it takes seconds), so the facts live here as a table.
`tests/trainer/test_pycaret_catalog.py` checks the table against the installed PyCaret,
so an upgrade that changes any of it fails a test instead of drifting silently.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlplatform.v1 import pipeline_pb2

CLASSIFICATION = pipeline_pb2.PROBLEM_TYPE_CLASSIFICATION
REGRESSION = pipeline_pb2.PROBLEM_TYPE_REGRESSION

PROBLEM_TYPE_NAMES: dict[int, str] = {CLASSIFICATION: "classification", REGRESSION: "regression"}

#: Estimator ids PyCaret knows, with the package an id needs beyond PyCaret's own
#: dependencies (None: nothing more). PyCaret hides an id whose package is missing.
ESTIMATORS: dict[int, dict[str, str | None]] = {
    CLASSIFICATION: {
        "lr": None, "knn": None, "nb": None, "dt": None, "svm": None, "rbfsvm": None,
        "gpc": None, "mlp": None, "ridge": None, "rf": None, "qda": None, "ada": None,
        "gbc": None, "lda": None, "et": None, "xgboost": "xgboost", "lightgbm": None,
        "catboost": "catboost", "dummy": None,
    },
    REGRESSION: {
        "lr": None, "lasso": None, "ridge": None, "en": None, "lar": None, "llar": None,
        "omp": None, "br": None, "ard": None, "par": None, "ransac": None, "tr": None,
        "huber": None, "kr": None, "svm": None, "knn": None, "dt": None, "rf": None,
        "et": None, "ada": None, "gbr": None, "mlp": None, "xgboost": "xgboost",
        "lightgbm": None, "catboost": "catboost", "dummy": None,
    },
}  # fmt: skip


@dataclass(frozen=True)
class Metric:
    """A PyCaret metric: its id, its name and the column name in PyCaret's results."""

    metric_id: str
    name: str
    display_name: str
    #: True when a larger value is better (PyCaret sorts descending).
    greater_is_better: bool = True


METRICS: dict[int, tuple[Metric, ...]] = {
    CLASSIFICATION: (
        Metric("acc", "Accuracy", "Accuracy"),
        Metric("auc", "AUC", "AUC"),
        Metric("recall", "Recall", "Recall"),
        Metric("precision", "Precision", "Prec."),
        Metric("f1", "F1", "F1"),
        Metric("kappa", "Kappa", "Kappa"),
        Metric("mcc", "MCC", "MCC"),
    ),
    REGRESSION: (
        Metric("mae", "MAE", "MAE", greater_is_better=False),
        Metric("mse", "MSE", "MSE", greater_is_better=False),
        Metric("rmse", "RMSE", "RMSE", greater_is_better=False),
        Metric("r2", "R2", "R2"),
        Metric("rmsle", "RMSLE", "RMSLE", greater_is_better=False),
        Metric("mape", "MAPE", "MAPE", greater_is_better=False),
    ),
}

#: The metric used when a pipeline names none (PyCaret's own default sort).
DEFAULT_METRIC: dict[int, str] = {CLASSIFICATION: "Accuracy", REGRESSION: "R2"}

_COMMON_SETUP_KEYWORDS = (
    "data data_func target index train_size test_data ordinal_features numeric_features "
    "categorical_features date_features text_features ignore_features keep_features preprocess "
    "create_date_columns imputation_type numeric_imputation categorical_imputation "
    "iterative_imputation_iters numeric_iterative_imputer categorical_iterative_imputer "
    "text_features_method max_encoding_ohe encoding_method rare_to_value rare_value "
    "polynomial_features polynomial_degree low_variance_threshold group_features drop_groups "
    "remove_multicollinearity multicollinearity_threshold bin_numeric_features remove_outliers "
    "outliers_method outliers_threshold transformation transformation_method normalize "
    "normalize_method pca pca_method pca_components feature_selection feature_selection_method "
    "feature_selection_estimator n_features_to_select custom_pipeline custom_pipeline_position "
    "data_split_shuffle data_split_stratify fold_strategy fold fold_shuffle fold_groups n_jobs "
    "use_gpu html session_id system_log log_experiment experiment_name experiment_custom_tags "
    "log_plots log_profile log_data engine verbose memory profile profile_kwargs"
).split()

#: Every keyword of `ClassificationExperiment.setup` / `RegressionExperiment.setup`.
SETUP_KEYWORDS: dict[int, frozenset[str]] = {
    CLASSIFICATION: frozenset([*_COMMON_SETUP_KEYWORDS, "fix_imbalance", "fix_imbalance_method"]),
    REGRESSION: frozenset([*_COMMON_SETUP_KEYWORDS, "transform_target", "transform_target_method"]),
}

#: `setup()` keywords the platform sets itself: data and target come from the pipeline,
#: logging is ours, parallelism is fixed to one level, `fold` is a modeling parameter.
RESERVED_SETUP_KEYWORDS = frozenset(
    "data data_func target test_data custom_pipeline fold n_jobs use_gpu html system_log "
    "log_experiment experiment_name experiment_custom_tags log_plots log_profile log_data "
    "verbose memory profile profile_kwargs".split()
)

NORMALIZE_METHODS = ("zscore", "minmax", "maxabs", "robust")

#: `plot_model` names that save an image, with the name PyCaret gives the file (its title).
#: PyCaret's `parameter` (a table) and `residuals_interactive` (a web page) save no image.
PLOTS: dict[int, dict[str, str]] = {
    CLASSIFICATION: {
        "pipeline": "Pipeline Plot", "auc": "AUC", "confusion_matrix": "Confusion Matrix",
        "threshold": "Threshold", "pr": "Precision Recall", "error": "Prediction Error",
        "class_report": "Class Report", "rfe": "Feature Selection", "learning": "Learning Curve",
        "manifold": "Manifold Learning", "calibration": "Calibration Curve",
        "vc": "Validation Curve", "dimension": "Dimensions", "feature": "Feature Importance",
        "feature_all": "Feature Importance (All)", "boundary": "Decision Boundary",
        "lift": "Lift Chart", "gain": "Gain Chart", "tree": "Decision Tree",
        "ks": "KS Statistic Plot",
    },
    REGRESSION: {
        "pipeline": "Pipeline Plot", "residuals": "Residuals", "error": "Prediction Error",
        "cooks": "Cooks Distance", "rfe": "Feature Selection", "learning": "Learning Curve",
        "manifold": "Manifold Learning", "vc": "Validation Curve",
        "feature": "Feature Importance", "feature_all": "Feature Importance (All)",
        "tree": "Decision Tree",
    },
}  # fmt: skip

#: Plots logged when a pipeline does not choose: the ones that draw from one prediction pass
#: over the hold-out set. `learning` (refits the model fold x 5 times) and the other refitting
#: plots are left out so plotting stays a small share of training; name them to get them.
DEFAULT_PLOTS: dict[int, tuple[str, ...]] = {
    CLASSIFICATION: ("auc", "confusion_matrix", "pr", "class_report", "feature", "calibration"),
    REGRESSION: ("residuals", "error", "feature"),
}


def find_metric(problem_type: int, name: str) -> Metric | None:
    """The metric called `name` (its id, name or display name; any case), or None."""
    wanted = name.strip().casefold()
    for metric in METRICS.get(problem_type, ()):
        if wanted in (metric.metric_id, metric.name.casefold(), metric.display_name.casefold()):
            return metric
    return None
