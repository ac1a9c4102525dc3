"""A registered pipeline served by ONNX Runtime, and the check that it answers as the original.

Why: scikit-learn pays milliseconds of Python per `predict` call (a scaler and a 100-tree
forest, a PyCaret pipeline's wrappers); the same pipeline compiled to an ONNX graph answers one
row in tens of microseconds. The registered pipeline stays the source of truth: a compiled
form serves only after `check` proves it gives the same labels (every row) and probabilities
or values within a tolerance on sample rows.

`CompiledModel` answers like the loaded pipeline (`predict`, `predict_proba`, `classes_`) on
the frames the input check produces, plus `predict_output` for both at once (one graph run).
ONNX Runtime runs each graph on one thread: the predictor's parallelism comes from batching.
It pickles as its graph, and rebuilds its session when unpickled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.common.extras import missing_extra
from mlplatform.common.input_schema import ColumnKind, ColumnSpec, DoublesRows, ProblemType

try:
    import onnxruntime
except ImportError as error:
    raise missing_extra("compiled", error) from error

#: Rows of a synthetic sample drawn within the columns' ranges, beside the edge rows.
DRAWN_ROWS = 256
#: Most baseline rows the check predicts (the baseline holds up to 10 000).
MOST_SAMPLE_ROWS = 2_000
_SEED = 25


def new_session(graph: bytes) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session over `graph` on one thread, fully optimised."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


class CompiledModel:
    """An ONNX graph of a pipeline over its numeric input columns, answering like it."""

    def __init__(
        self,
        graph: bytes,
        column_names: Sequence[str],
        double: bool,
        problem_type: ProblemType,
        encoded_classes: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> None:
        self.graph = graph
        self.column_names = tuple(column_names)
        #: Whether the graph takes float64 (else float32, which the check must have passed).
        self.double = double
        self.problem_type = problem_type
        #: The final estimator's classes (the graph's labels) and the pipeline's labels for them.
        self.encoded_classes = encoded_classes
        self.labels = labels
        self._start()

    def _start(self) -> None:
        self._session = new_session(self.graph)
        self._input_name = self._session.get_inputs()[0].name
        outputs = [output.name for output in self._session.get_outputs()]
        # Classifiers: labels come from the probabilities, as scikit-learn's forests, boosters
        # and linear models make them (argmax, the first class on a tie); the graph's own
        # label output breaks ties the other way.
        self._output_names = (
            outputs[1:2] if self.problem_type is ProblemType.CLASSIFICATION else outputs[:1]
        )
        self._columns = pd.Index(self.column_names)
        self._dtype = np.float64 if self.double else np.float32

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in ("_session", "_input_name", "_output_names", "_columns", "_dtype"):
            state.pop(name)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._start()

    @property
    def classes_(self) -> np.ndarray | None:
        """The class labels, in probability-column order (classifiers)."""
        return self.labels

    def _matrix(self, features: pd.DataFrame | DoublesRows | np.ndarray) -> np.ndarray:
        if isinstance(features, DoublesRows):
            if features.names == self.column_names:
                return np.asarray(features.matrix, dtype=self._dtype)
            features = features.to_frame()
        if isinstance(features, pd.DataFrame):
            if not features.columns.equals(self._columns):
                features = features[list(self.column_names)]
            return features.to_numpy(dtype=self._dtype)
        return np.asarray(features, dtype=self._dtype)

    def predict_output(
        self, features: pd.DataFrame | DoublesRows | np.ndarray, with_probabilities: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictions of `features`' rows, and class probabilities when asked (one run)."""
        outputs = self._session.run(self._output_names, {self._input_name: self._matrix(features)})
        if self.problem_type is ProblemType.REGRESSION:
            return np.asarray(outputs[0], dtype=np.float64).reshape(-1), None
        assert self.labels is not None
        scores = outputs[0]
        predictions = self.labels[np.argmax(scores, axis=1)]
        return predictions, np.asarray(scores, dtype=np.float64) if with_probabilities else None

    def predict(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        return self.predict_output(features)[0]

    def predict_proba(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        probabilities = self.predict_output(features, with_probabilities=True)[1]
        assert probabilities is not None, "a regressor has no probabilities"
        return probabilities


# --- compiling ----------------------------------------------------------------------------------


def _final_estimator(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    return _final_estimator(steps[-1][1]) if steps else estimator


def class_labels(estimator: Any) -> tuple[np.ndarray, np.ndarray]:
    """The final estimator's classes and the pipeline's labels for them (PyCaret label-encodes
    the target inside its pipeline), as `predict` returns them."""
    encoded = np.asarray(_final_estimator(estimator).classes_)
    if type(estimator).__module__.startswith("pycaret"):
        return encoded, np.asarray(estimator.inverse_transform(pd.Series(encoded)))
    return encoded, encoded


def compile_pipeline(
    estimator: Any,
    input_schema: Sequence[ColumnSpec],
    problem_type: ProblemType,
    graph: bytes | None = None,
    double: bool = True,
) -> CompiledModel:
    """`estimator` compiled (or `graph`, compiled before, loaded); UntranslatableError when a
    step has no converter, a column is text, or ONNX Runtime runs the graph in neither type."""
    from mlplatform.common.onnx_translation import UntranslatableError, to_onnx, translate

    text = [spec.name for spec in input_schema if spec.kind is ColumnKind.STRING]
    if text:
        raise UntranslatableError(
            f"column {text[0]!r} is text; compiled serving takes numeric columns only"
        )
    names = [spec.name for spec in input_schema]
    encoded, labels = (None, None)
    if problem_type is ProblemType.CLASSIFICATION:
        encoded, labels = class_labels(estimator)
    if graph is not None:
        return CompiledModel(graph, names, double, problem_type, encoded, labels)
    pipeline = translate(estimator, names)
    classifier = problem_type is ProblemType.CLASSIFICATION
    failures = []
    for double in (True, False):
        graph = to_onnx(pipeline, len(names), double, classifier)
        try:
            return CompiledModel(graph, names, double, problem_type, encoded, labels)
        except Exception as error:  # ONNX Runtime's errors share no base class but Exception
            failures.append(str(error).splitlines()[0])
    raise UntranslatableError(f"ONNX Runtime cannot run the graph: {failures[-1]}")


# --- the check ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """How a compiled model compared with the original on sample rows."""

    rows: int
    label_mismatches: int
    largest_difference: float
    tolerance: float
    double: bool

    @property
    def passed(self) -> bool:
        return (
            self.rows > 0
            and not self.label_mismatches
            and self.largest_difference <= self.tolerance
        )

    def reason(self) -> str:
        """Why the compiled model may not serve ("" when it may)."""
        if self.passed:
            return ""
        where = "float32 graph" if not self.double else "graph"
        if not self.rows:
            return "the check had no row the original model could predict"
        if self.label_mismatches:
            return (
                f"the check failed: {self.label_mismatches} of {self.rows} labels differ ({where})"
            )
        return (
            f"the check failed: outputs differ by up to {self.largest_difference:.3g} "
            f"(tolerance {self.tolerance:g}, {where})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def check(
    compiled: CompiledModel, original: Any, sample: pd.DataFrame, tolerance: float
) -> CheckResult:
    """Labels must be identical on every row, probabilities (or regression values, relative to
    their size when above 1) within `tolerance`."""
    predictions, probabilities = compiled.predict_output(sample, with_probabilities=True)
    expected = np.asarray(original.predict(sample))
    if expected.ndim == 2 and expected.shape[1] == 1:
        expected = expected[:, 0]
    if compiled.problem_type is ProblemType.REGRESSION:
        scale = np.maximum(1.0, np.abs(expected.astype(np.float64)))
        difference = float(np.max(np.abs(predictions - expected) / scale, initial=0.0))
        return CheckResult(len(sample), 0, difference, tolerance, compiled.double)
    same_kind = expected.dtype.kind == predictions.dtype.kind
    mismatches = len(sample) if not same_kind else int(np.sum(expected != predictions))
    expected_probabilities = np.asarray(original.predict_proba(sample), dtype=np.float64)
    assert probabilities is not None
    if probabilities.shape != expected_probabilities.shape:
        return CheckResult(len(sample), len(sample), float("inf"), tolerance, compiled.double)
    difference = float(np.max(np.abs(probabilities - expected_probabilities), initial=0.0))
    return CheckResult(len(sample), mismatches, difference, tolerance, compiled.double)


def sample_rows(
    input_schema: Sequence[ColumnSpec], known: pd.DataFrame | None
) -> list[pd.DataFrame]:
    """Blocks of rows to check on: `known` rows (the baseline's, else the input example's),
    rows drawn within the known ranges, then one row per edge: each column at its smallest and
    largest known value, at 0 and missing (optional columns)."""
    rng = np.random.default_rng(_SEED)
    names = [spec.name for spec in input_schema]
    if known is None or not len(known):
        known = pd.DataFrame({name: [0.0] for name in names})
    known = known[names].head(MOST_SAMPLE_ROWS).reset_index(drop=True)
    numeric = known.apply(pd.to_numeric, errors="coerce").astype(np.float64)
    low, high = numeric.min().fillna(0.0), numeric.max().fillna(0.0)
    spread = np.maximum(high - low, np.abs(high) + 1.0)
    low, high = low - (high - low == 0) * spread / 2, high + (high - low == 0) * spread / 2
    first = numeric.iloc[[0]].fillna(0.0)
    edges = []
    for spec in input_schema:
        values = [low[spec.name], high[spec.name], 0.0] + ([np.nan] if not spec.required else [])
        for value in values:
            row = first.copy()
            row[spec.name] = value
            edges.append(row)
    drawn = pd.DataFrame({name: rng.uniform(low[name], high[name], DRAWN_ROWS) for name in names})
    for spec in input_schema:
        if spec.kind is ColumnKind.INT64:
            drawn[spec.name] = np.round(drawn[spec.name])
        elif spec.kind is ColumnKind.BOOL:
            drawn[spec.name] = drawn[spec.name] > (low[spec.name] + high[spec.name]) / 2
            edges = [row.assign(**{spec.name: row[spec.name].astype(bool)}) for row in edges]
    return [numeric, drawn, *edges]
